package p2p

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/zopeer/zopeer/zo"
)

// Wire constants. docs/PROTOCOL-WIRE.md is the normative description; keep
// the two in step.
const (
	// WireVersion is the first byte of every batch and state message.
	WireVersion = 1
	// MaxBatchCount bounds the updates in one batch.
	MaxBatchCount = 4096
	// MaxBatchV1Size is the largest valid version 1 batch.
	MaxBatchV1Size = batchFixed + binary.MaxVarintLen64 + 2 + MaxBatchCount
	// MaxBatchSize is the largest valid encoded batch of any version: a
	// version 2 batch adds at most 3 + MaxExtSize bytes.
	MaxBatchSize = MaxBatchV1Size + 3 + MaxExtSize
	// maxStateSize bounds an encoded state announcement.
	maxStateSize = 1 + 8 + ed25519.PublicKeySize + 2*binary.MaxVarintLen64 + 64 + ed25519.SignatureSize

	batchFixed = 1 + 8 + ed25519.PublicKeySize + 1 + ed25519.SignatureSize

	batchDomain = "zopeer/batch/1"
	stateDomain = "zopeer/state/1"
)

// Decoding errors. Every one of them means the sender broke the protocol.
var (
	ErrMalformed = errors.New("p2p: malformed message")
	ErrVersion   = errors.New("p2p: unsupported wire version")
	ErrWrongRun  = errors.New("p2p: message from another run")
	ErrSignature = errors.New("p2p: bad signature")
)

// RunTag identifies a run on the wire: the first 8 bytes of SHA-256(run).
type RunTag [8]byte

// NewRunTag returns run's tag.
func NewRunTag(run string) RunTag {
	h := sha256.Sum256([]byte(run))
	return RunTag(h[:8])
}

// MachineOf returns the machine id bound to an Ed25519 public key: the first 8
// bytes, big-endian, of SHA-256 of the libp2p-marshalled key. Binding the id to
// the key lets anyone check that a batch was signed by its machine.
func MachineOf(pub ed25519.PublicKey) uint64 {
	// libp2p's protobuf encoding of an Ed25519 PublicKey: field 1 (Type) =
	// 1 (Ed25519), field 2 (Data) = 32 bytes.
	var buf [4 + ed25519.PublicKeySize]byte
	copy(buf[:], []byte{0x08, 0x01, 0x12, 0x20})
	copy(buf[4:], pub)
	h := sha256.Sum256(buf[:])
	return binary.BigEndian.Uint64(h[:8])
}

// Batch is one machine's signed batch of consecutive updates: samples First,
// First+1, …, First+len(Codes)-1, sharing exponent Exp.
type Batch struct {
	Run     RunTag
	PubKey  ed25519.PublicKey
	Machine uint64 // MachineOf(PubKey)
	First   uint64
	Exp     uint8
	Codes   []int8
	// Exts are a version 2 batch's extension records (docs/PROTOCOL-WIRE.md
	// §3.3), types strictly increasing; nil in a version 1 batch.
	Exts []Ext
	// Raw is the signed wire encoding. A Log must hand it back byte for byte:
	// peers that fetch it verify the original signature.
	Raw []byte
}

// Last is the sample index of the batch's last update.
func (b *Batch) Last() uint64 { return b.First + uint64(len(b.Codes)) - 1 }

// Updates expands the batch.
func (b *Batch) Updates() []zo.Update {
	us := make([]zo.Update, len(b.Codes))
	for i := range b.Codes {
		us[i] = b.Update(i)
	}
	return us
}

// Update is the batch's i-th update, with its pool slot if it carries one.
func (b *Batch) Update(i int) zo.Update {
	u := zo.Update{Machine: b.Machine, Sample: b.First + uint64(i), Exp: b.Exp, Code: b.Codes[i]}
	if slots := b.Slots(); slots != nil {
		u.Slotted, u.Slot = true, slots[i]
	}
	return u
}

// SignBatch encodes and signs a version 1 batch of run with key.
func SignBatch(key crypto.PrivKey, run RunTag, first uint64, exp uint8, codes []int8) (*Batch, error) {
	return SignBatchExt(key, run, first, exp, codes, nil)
}

// SignBatchExt encodes and signs a batch with extension records exts:
// version 2 if there are any, else version 1.
func SignBatchExt(key crypto.PrivKey, run RunTag, first uint64, exp uint8, codes []int8, exts []Ext) (*Batch, error) {
	if err := checkExts(exts); err != nil {
		return nil, err
	}
	if err := checkPoolLen(exts, len(codes)); err != nil {
		return nil, err
	}
	sk, err := ed25519Key(key)
	if err != nil {
		return nil, err
	}
	if len(codes) == 0 || len(codes) > MaxBatchCount {
		return nil, fmt.Errorf("p2p: batch of %d updates, want 1..%d", len(codes), MaxBatchCount)
	}
	if first+uint64(len(codes))-1 < first {
		return nil, fmt.Errorf("p2p: batch samples overflow uint64")
	}
	pub := sk.Public().(ed25519.PublicKey)
	raw := make([]byte, 0, batchFixed+2*binary.MaxVarintLen64+len(codes))
	version := byte(WireVersion)
	if len(exts) > 0 {
		version = BatchVersion2
	}
	raw = append(raw, version)
	raw = append(raw, run[:]...)
	raw = append(raw, pub...)
	raw = binary.AppendUvarint(raw, first)
	raw = binary.AppendUvarint(raw, uint64(len(codes)))
	raw = append(raw, exp)
	for _, c := range codes {
		if c < -zo.CodeMax {
			return nil, fmt.Errorf("p2p: code %d out of range", c)
		}
		raw = append(raw, byte(c))
	}
	if len(exts) > 0 {
		raw = appendExtBlock(raw, exts)
	}
	raw = append(raw, ed25519.Sign(sk, signed(batchDomain, raw))...)
	return &Batch{
		Run: run, PubKey: pub, Machine: MachineOf(pub), First: first, Exp: exp,
		Codes: append([]int8(nil), codes...), Exts: cloneExts(exts), Raw: raw,
	}, nil
}

func cloneExts(exts []Ext) []Ext {
	if len(exts) == 0 {
		return nil
	}
	out := make([]Ext, len(exts))
	for i, e := range exts {
		out[i] = Ext{Type: e.Type, Value: append([]byte(nil), e.Value...)}
	}
	return out
}

// DecodeBatch parses and authenticates one batch of run. It rejects anything
// but the canonical encoding, so equal batches have equal bytes.
func DecodeBatch(data []byte, run RunTag) (*Batch, error) {
	if len(data) > MaxBatchSize || len(data) < batchFixed+2 {
		return nil, fmt.Errorf("%w: batch of %d bytes", ErrMalformed, len(data))
	}
	v2 := data[0] == BatchVersion2
	if data[0] != WireVersion && !v2 {
		return nil, fmt.Errorf("%w: %d", ErrVersion, data[0])
	}
	if RunTag(data[1:9]) != run {
		return nil, ErrWrongRun
	}
	if !v2 && len(data) > MaxBatchV1Size {
		return nil, fmt.Errorf("%w: version 1 batch of %d bytes", ErrMalformed, len(data))
	}
	pub := ed25519.PublicKey(data[9:41])
	rest := data[41:]
	first, rest, err := uvarint(rest)
	if err != nil {
		return nil, err
	}
	count, rest, err := uvarint(rest)
	if err != nil {
		return nil, err
	}
	if count == 0 || count > MaxBatchCount {
		return nil, fmt.Errorf("%w: batch count %d", ErrMalformed, count)
	}
	if first+count-1 < first {
		return nil, fmt.Errorf("%w: samples overflow", ErrMalformed)
	}
	if uint64(len(rest)) < 1+count+ed25519.SignatureSize || !v2 && uint64(len(rest)) != 1+count+ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: batch length", ErrMalformed)
	}
	exp := rest[0]
	codes := make([]int8, count)
	for i, c := range rest[1 : 1+count] {
		if c == 0x80 {
			return nil, fmt.Errorf("%w: code -128", ErrMalformed)
		}
		codes[i] = int8(c)
	}
	var exts []Ext
	if v2 {
		var tail []byte
		if exts, tail, err = decodeExtBlock(rest[1+count:]); err != nil {
			return nil, err
		}
		if len(tail) != ed25519.SignatureSize {
			return nil, fmt.Errorf("%w: batch length", ErrMalformed)
		}
		if err := checkPoolLen(exts, int(count)); err != nil {
			return nil, err
		}
	}
	body := len(data) - ed25519.SignatureSize
	if !verifySig(pub, signed(batchDomain, data[:body]), data[body:]) {
		return nil, ErrSignature
	}
	return &Batch{
		Run: run, PubKey: pub, Machine: MachineOf(pub), First: first, Exp: exp,
		Codes: codes, Exts: exts, Raw: data,
	}, nil
}

// State is a peer's announcement of what it holds, so that peers can compare
// their logs and weights.
type State struct {
	Machine     uint64
	PubKey      ed25519.PublicKey
	Time        uint64 // sender's clock, Unix milliseconds; orders a sender's announcements
	Count       uint64 // updates in the sender's log
	Digest      zo.SetDigest
	WeightsHash [32]byte
}

// EncodeState signs s (its Machine and PubKey are taken from key).
func EncodeState(key crypto.PrivKey, run RunTag, s State) ([]byte, error) {
	sk, err := ed25519Key(key)
	if err != nil {
		return nil, err
	}
	raw := make([]byte, 0, maxStateSize)
	raw = append(raw, WireVersion)
	raw = append(raw, run[:]...)
	raw = append(raw, sk.Public().(ed25519.PublicKey)...)
	raw = binary.AppendUvarint(raw, s.Time)
	raw = binary.AppendUvarint(raw, s.Count)
	raw = append(raw, s.Digest[:]...)
	raw = append(raw, s.WeightsHash[:]...)
	return append(raw, ed25519.Sign(sk, signed(stateDomain, raw))...), nil
}

// DecodeState parses and authenticates a state announcement of run.
func DecodeState(data []byte, run RunTag) (State, error) {
	var s State
	if len(data) > maxStateSize || len(data) < 1+8+32+2+64+64 {
		return s, fmt.Errorf("%w: state of %d bytes", ErrMalformed, len(data))
	}
	if data[0] != WireVersion {
		return s, fmt.Errorf("%w: %d", ErrVersion, data[0])
	}
	if RunTag(data[1:9]) != run {
		return s, ErrWrongRun
	}
	s.PubKey = ed25519.PublicKey(data[9:41])
	rest := data[41:]
	var err error
	if s.Time, rest, err = uvarint(rest); err != nil {
		return s, err
	}
	if s.Count, rest, err = uvarint(rest); err != nil {
		return s, err
	}
	if len(rest) != 64+ed25519.SignatureSize {
		return s, fmt.Errorf("%w: state length", ErrMalformed)
	}
	copy(s.Digest[:], rest[:32])
	copy(s.WeightsHash[:], rest[32:64])
	body := len(data) - ed25519.SignatureSize
	if !verifySig(s.PubKey, signed(stateDomain, data[:body]), data[body:]) {
		return State{}, ErrSignature
	}
	s.Machine = MachineOf(s.PubKey)
	return s, nil
}

// uvarint reads a minimally encoded uvarint: one value, one encoding.
func uvarint(b []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, nil, fmt.Errorf("%w: bad varint", ErrMalformed)
	}
	if n != uvarintLen(v) {
		return 0, nil, fmt.Errorf("%w: non-minimal varint", ErrMalformed)
	}
	return v, b[n:], nil
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// signed prefixes a domain tag so a zopeer signature can never be replayed as
// a signature over any other kind of message.
func signed(domain string, body []byte) []byte {
	m := make([]byte, 0, len(domain)+len(body))
	return append(append(m, domain...), body...)
}

func ed25519Key(key crypto.PrivKey) (ed25519.PrivateKey, error) {
	if key == nil || key.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("p2p: identity key must be Ed25519")
	}
	raw, err := key.Raw()
	if err != nil {
		return nil, fmt.Errorf("p2p: identity key: %w", err)
	}
	return ed25519.PrivateKey(raw), nil
}
