package p2p

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/zopeer/zopeer/zo"
)

// fixedKey is a deterministic key so seeds and golden sizes are stable.
func fixedKey(t testing.TB, seed byte) crypto.PrivKey {
	t.Helper()
	k, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestBatchRoundTrip(t *testing.T) {
	key := fixedKey(t, 1)
	tag := NewRunTag("run")
	codes := testCodes(64, 3)
	b, err := SignBatch(key, tag, 1000, 131, codes)
	if err != nil {
		t.Fatal(err)
	}
	// 1 version + 8 run + 32 key + 2 first + 1 count + 1 exp + 64 codes + 64 signature.
	if len(b.Raw) != 173 {
		t.Errorf("64-update batch is %d bytes, want 173", len(b.Raw))
	}
	got, err := DecodeBatch(b.Raw, tag)
	if err != nil {
		t.Fatal(err)
	}
	if got.Machine != b.Machine || got.First != 1000 || got.Exp != 131 || !bytes.Equal(int8Bytes(got.Codes), int8Bytes(codes)) {
		t.Fatalf("decoded %+v", got)
	}
	us := got.Updates()
	if us[63] != (zo.Update{Machine: b.Machine, Sample: 1063, Exp: 131, Code: codes[63]}) {
		t.Fatalf("last update %+v", us[63])
	}
}

// TestMachineOf checks the documented binding against libp2p's own key
// encoding: an implementation in another language can follow the same path.
func TestMachineOf(t *testing.T) {
	key := fixedKey(t, 2)
	m, err := crypto.MarshalPublicKey(key.GetPublic())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := key.GetPublic().Raw()
	h := sha256.Sum256(m)
	if want := binary.BigEndian.Uint64(h[:8]); MachineOf(raw) != want {
		t.Fatalf("MachineOf = %d, want %d", MachineOf(raw), want)
	}
	// The peer ID of an Ed25519 key embeds the same marshalled key.
	id, _ := peer.IDFromPublicKey(key.GetPublic())
	pk, _ := id.ExtractPublicKey()
	if pr, _ := pk.Raw(); !bytes.Equal(pr, raw) {
		t.Fatal("peer ID does not embed the key")
	}
}

func TestDecodeBatchErrors(t *testing.T) {
	key := fixedKey(t, 1)
	tag := NewRunTag("run")
	ok, _ := SignBatch(key, tag, 5, 1, []int8{1, -1, 127, -127})
	uv := func(v uint64) []byte { return binary.AppendUvarint(nil, v) }
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), ok.Raw...)) }
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"short", ok.Raw[:50], ErrMalformed},
		{"oversized", make([]byte, MaxBatchSize+1), ErrMalformed},
		{"version", signRaw(key, rawBody(9, tag, key, uv(5), uv(1), 1, []byte{1})), ErrVersion},
		{"run", ok.Raw, ErrWrongRun},
		{"trailing", append(append([]byte(nil), ok.Raw...), 0), ErrMalformed},
		{"truncated", ok.Raw[:len(ok.Raw)-1], ErrMalformed},
		{"zero count", signRaw(key, rawBody(1, tag, key, uv(5), uv(0), 1, nil)), ErrMalformed},
		{"count too big", signRaw(key, rawBody(1, tag, key, uv(5), uv(MaxBatchCount+1), 1, make([]byte, MaxBatchCount+1))), ErrMalformed},
		{"overflow", signRaw(key, rawBody(1, tag, key, uv(math.MaxUint64), uv(2), 1, []byte{1, 2})), ErrMalformed},
		{"non-minimal first", signRaw(key, rawBody(1, tag, key, []byte{0x85, 0x00}, uv(1), 1, []byte{1})), ErrMalformed},
		{"bad varint", signRaw(key, rawBody(1, tag, key, bytes.Repeat([]byte{0xff}, 11), uv(1), 1, []byte{1})), ErrMalformed},
		{"code -128", signRaw(key, rawBody(1, tag, key, uv(5), uv(1), 1, []byte{0x80})), ErrMalformed},
		{"flipped code", mut(func(b []byte) []byte { b[45] ^= 2; return b }), ErrSignature},
		{"flipped signature", mut(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrSignature},
		{"other key", mut(func(b []byte) []byte { copy(b[9:41], bytes.Repeat([]byte{7}, 32)); return b }), ErrSignature},
	}
	for _, c := range cases {
		run := tag
		if c.name == "run" {
			run = NewRunTag("another")
		}
		if _, err := DecodeBatch(c.data, run); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
	// The largest batch and the last sample of the sample space are fine.
	if _, err := DecodeBatch(signRaw(key, rawBody(1, tag, key, uv(math.MaxUint64), uv(1), 1, []byte{1})), tag); err != nil {
		t.Errorf("last sample: %v", err)
	}
	big, err := SignBatch(key, tag, math.MaxUint64-MaxBatchCount+1, 1, make([]int8, MaxBatchCount))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeBatch(big.Raw, tag); err != nil {
		t.Errorf("largest batch: %v", err)
	}
}

func TestSignBatchRefuses(t *testing.T) {
	key := fixedKey(t, 1)
	tag := NewRunTag("run")
	for name, f := range map[string]func() error{
		"empty":    func() error { _, err := SignBatch(key, tag, 0, 0, nil); return err },
		"too many": func() error { _, err := SignBatch(key, tag, 0, 0, make([]int8, MaxBatchCount+1)); return err },
		"overflow": func() error { _, err := SignBatch(key, tag, math.MaxUint64, 0, []int8{1, 2}); return err },
		"-128":     func() error { _, err := SignBatch(key, tag, 0, 0, []int8{-128}); return err },
		"not ed25519": func() error {
			k, _, _ := crypto.GenerateSecp256k1Key(nil)
			_, err := SignBatch(k, tag, 0, 0, []int8{1})
			return err
		},
	} {
		if f() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	key := fixedKey(t, 3)
	tag := NewRunTag("run")
	s := State{Time: 1_700_000_000_000, Count: 12345, Digest: zo.SetDigest{1, 2, 3}, WeightsHash: [32]byte{4, 5}}
	raw, err := EncodeState(key, tag, s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeState(raw, tag)
	if err != nil {
		t.Fatal(err)
	}
	raw32, _ := key.GetPublic().Raw()
	s.PubKey, s.Machine = raw32, MachineOf(raw32)
	if got.Machine != s.Machine || got.Time != s.Time || got.Count != s.Count || got.Digest != s.Digest || got.WeightsHash != s.WeightsHash {
		t.Fatalf("got %+v, want %+v", got, s)
	}
	raw[50] ^= 1
	if _, err := DecodeState(raw, tag); !errors.Is(err, ErrSignature) {
		t.Fatalf("tampered state: %v", err)
	}
	if _, err := DecodeState(raw[:len(raw)-1], tag); err == nil {
		t.Fatal("truncated state accepted")
	}
	if _, err := DecodeState(raw, NewRunTag("x")); !errors.Is(err, ErrWrongRun) {
		t.Fatalf("wrong run: %v", err)
	}
}

func TestSyncMessagesRoundTrip(t *testing.T) {
	tag := NewRunTag("run")
	for _, q := range []syncRequest{
		{Kind: kindDigest},
		{Kind: kindFetch, Machine: math.MaxUint64, Lo: 0, Hi: math.MaxUint64},
		{Kind: kindFetch, Machine: 1, Lo: 300, Hi: 300},
	} {
		got, err := decodeRequest(encodeRequest(tag, q), tag)
		if err != nil || got != q {
			t.Errorf("request %+v: got %+v, %v", q, got, err)
		}
	}
	if _, err := decodeRequest(encodeRequest(tag, syncRequest{Kind: kindFetch, Lo: 2, Hi: 1}), tag); err == nil {
		t.Error("empty fetch range accepted")
	}
	hs := []Holding{
		{Machine: 1, Samples: Ranges{{0, 0}}},
		{Machine: 7, Samples: Ranges{{0, 99}, {101, 101}, {1 << 40, math.MaxUint64}}},
	}
	enc := encodeDigest(hs, nil, MaxDigestSize)
	got, _, err := decodeDigest(enc)
	if err != nil || len(got) != 2 || len(got[1].Samples) != 3 || got[1].Samples[2] != hs[1].Samples[2] {
		t.Fatalf("digest: %+v, %v", got, err)
	}
	if short := encodeDigest(hs, nil, 30); len(short) >= len(enc) {
		t.Error("digest limit not applied")
	}
	for name, bad := range map[string][]Holding{
		"adjacent":  {{Machine: 1, Samples: Ranges{{0, 1}, {2, 3}}}},
		"unordered": {{Machine: 2, Samples: Ranges{{0, 0}}}, {Machine: 1, Samples: Ranges{{0, 0}}}},
	} {
		if _, _, err := decodeDigest(encodeDigest(bad, nil, MaxDigestSize)); err == nil {
			t.Errorf("%s digest accepted", name)
		}
	}
}

func int8Bytes(c []int8) []byte {
	b := make([]byte, len(c))
	for i, v := range c {
		b[i] = byte(v)
	}
	return b
}
