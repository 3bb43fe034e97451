package dataset

import (
	"crypto/sha256"
	"encoding/binary"
)

// Digest identifies the records a public-data run trains on
// (docs/PROTOCOL.md §11.1): SHA-256 of "zopeer/dataset/v1\x00", then for each
// record in order u32be(len(Tokens)), u32be(LossStart) and each token as
// u32be. It covers exactly what the minibatch rule reads (positions, tokens,
// loss start), so two peers with equal digests compute equal minibatches
// whatever files, tokenizer or context limit produced the records.
func (d *Dataset) Digest() [32]byte {
	h := sha256.New()
	h.Write([]byte("zopeer/dataset/v1\x00"))
	var buf []byte
	for _, r := range d.records {
		buf = binary.BigEndian.AppendUint32(buf[:0], uint32(len(r.Tokens)))
		buf = binary.BigEndian.AppendUint32(buf, uint32(r.LossStart))
		for _, t := range r.Tokens {
			buf = binary.BigEndian.AppendUint32(buf, uint32(t))
		}
		h.Write(buf)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}
