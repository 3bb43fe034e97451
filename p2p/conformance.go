package p2p

import "github.com/zopeer/zopeer/zo"

// Encoders and decoders of the sync protocol's frames (docs/PROTOCOL-WIRE.md
// §5), exported for the conformance kit (docs/conformance) and for tools.

// AdmitBatch decides a batch as a gossip validator's Reject rows do
// (PROTOCOL-WIRE.md §3.2): "" when it passes every one, else the reason
// counted (Reason*). It is a pure function of the bytes and the run's
// manifest (its rules and proof of work); the rows that depend on what a
// receiver holds (exclusion, rate, equivocation, replay) are not included.
func AdmitBatch(data []byte, run string, rules zo.Rules, powBits int) (*Batch, string, error) {
	return checkBatch(data, NewRunTag(run), rules, func(b *Batch) bool { return PowBits(run, b.PubKey) >= powBits })
}

// Sync request kinds (PROTOCOL-WIRE.md §5.1).
const (
	KindDigest   = kindDigest
	KindFetch    = kindFetch
	KindManifest = kindManifest
	KindEvidence = kindEvidence
	KindSnapInfo = kindSnapInfo
	KindSnapData = kindSnapData
)

// EncodeSyncRequest is the body of a request frame.
func EncodeSyncRequest(run RunTag, q SyncRequest) []byte { return encodeRequest(run, q) }

// DecodeSyncRequest parses and checks a request frame's body as a donor does.
func DecodeSyncRequest(b []byte, run RunTag) (SyncRequest, error) { return decodeRequest(b, run) }

// EncodeDigestResponse is the body of a digest response (at most
// MaxDigestSize bytes: the machines that do not fit are left out).
func EncodeDigestResponse(hs []Holding, excluded []uint64) []byte {
	return encodeDigest(hs, excluded, MaxDigestSize)
}

// DecodeDigestResponse parses and checks a digest response's body as a
// requester does.
func DecodeDigestResponse(b []byte) ([]Holding, []uint64, error) { return decodeDigest(b) }

// EncodeSnapshotInfo is the body of a snapshot info response (PROTOCOL-WIRE.md §5.7).
func EncodeSnapshotInfo(in SnapshotInfo) ([]byte, error) { return encodeSnapInfo(in) }

// DecodeSnapshotInfo parses and checks a snapshot info body as a joiner does.
func DecodeSnapshotInfo(b []byte) (SnapshotInfo, error) { return decodeSnapInfo(b) }

// AppendFrame appends uvarint(len(body)) || body.
func AppendFrame(dst, body []byte) []byte {
	return append(appendUvarint(dst, uint64(len(body))), body...)
}

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// ReasonOf names the Reject row (Reason*) an error of DecodeBatch,
// DecodeState, DecodeEvidence or the run's rules falls under.
func ReasonOf(err error) string { return reasonOf(err) }
