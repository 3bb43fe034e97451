package p2p

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Batch format version 2 (docs/PROTOCOL-WIRE.md §3.3): the version 1 layout
// with version byte 0x02 and, between the codes and the signature, an
// extension block: uvarint(total length) then TLV records (uvarint type,
// uvarint length, value), types strictly increasing. Version 1 batches stay
// valid everywhere; a batch needs version 2 only to carry an extension that
// its run's manifest asks for.
const (
	// BatchVersion2 is the version byte of a batch with extensions.
	BatchVersion2 = 2
	// MaxExtSize bounds the extension block's records (the total length
	// field's value): 16 KiB, so a v2 batch is at most 20,601 bytes.
	MaxExtSize = 16 << 10
	// MaxExtRecords bounds the records in one block (each takes at least
	// 2 bytes, so the size bound alone allows thousands).
	MaxExtRecords = 16
)

// Extension types. Every type a peer does not know is refused, so adding one
// is a protocol revision: its number, value format and meaning go into
// docs/PROTOCOL-WIRE.md §3.3.
const (
	// ExtBasis (1): the set of updates the batch's gradients were computed
	// at (PROTOCOL.md §11.2), encoded by AppendBasis.
	ExtBasis uint64 = 1
	// ExtPool (2): a FedKSeed-Pro run's pool slots (PROTOCOL.md §12.1),
	// one byte per update in sample order: exactly count bytes.
	ExtPool uint64 = 2
)

// extCheckers validates each known type's value; a type absent here is
// unknown and the batch is malformed.
var extCheckers = map[uint64]func([]byte) error{
	ExtBasis: func(v []byte) error { _, err := DecodeBasis(v); return err },
	ExtPool: func(v []byte) error {
		if len(v) == 0 {
			return fmt.Errorf("%w: empty pool slots", ErrMalformed)
		}
		return nil // its length is checked against the batch's count (checkPoolLen)
	},
}

// checkPoolLen: a pool-slot record holds exactly one slot per update.
func checkPoolLen(exts []Ext, count int) error {
	for _, e := range exts {
		if e.Type == ExtPool && len(e.Value) != count {
			return fmt.Errorf("%w: %d pool slots for %d updates", ErrMalformed, len(e.Value), count)
		}
	}
	return nil
}

// Slots are the batch's pool slots (extension type 2), nil if it has none.
func (b *Batch) Slots() []uint8 {
	v, _ := b.Ext(ExtPool)
	return v
}

// Ext is one extension record of a version 2 batch.
type Ext struct {
	Type  uint64
	Value []byte
}

// Ext returns the value of the batch's extension of type typ, if present.
func (b *Batch) Ext(typ uint64) ([]byte, bool) {
	for _, e := range b.Exts {
		if e.Type == typ {
			return e.Value, true
		}
	}
	return nil, false
}

// appendExtBlock appends the extension block of exts (already checked by
// checkExts).
func appendExtBlock(raw []byte, exts []Ext) []byte {
	var body []byte
	for _, e := range exts {
		body = binary.AppendUvarint(body, e.Type)
		body = binary.AppendUvarint(body, uint64(len(e.Value)))
		body = append(body, e.Value...)
	}
	raw = binary.AppendUvarint(raw, uint64(len(body)))
	return append(raw, body...)
}

// checkExts validates a set of records for signing: known types, strictly
// increasing, valid values, within the bounds.
func checkExts(exts []Ext) error {
	if len(exts) > MaxExtRecords {
		return fmt.Errorf("p2p: %d extension records, at most %d", len(exts), MaxExtRecords)
	}
	size := 0
	for i, e := range exts {
		if i > 0 && e.Type <= exts[i-1].Type {
			return fmt.Errorf("p2p: extension types not strictly increasing")
		}
		check, ok := extCheckers[e.Type]
		if !ok {
			return fmt.Errorf("p2p: unknown extension type %d", e.Type)
		}
		if err := check(e.Value); err != nil {
			return fmt.Errorf("p2p: extension %d: %w", e.Type, err)
		}
		size += uvarintLen(e.Type) + uvarintLen(uint64(len(e.Value))) + len(e.Value)
	}
	if size > MaxExtSize {
		return fmt.Errorf("p2p: extension block of %d bytes, at most %d", size, MaxExtSize)
	}
	return nil
}

// decodeExtBlock parses the extension block at the start of b and returns
// the records and what follows the block.
func decodeExtBlock(b []byte) ([]Ext, []byte, error) {
	n, b, err := uvarint(b)
	if err != nil {
		return nil, nil, err
	}
	if n == 0 || n > MaxExtSize || n > uint64(len(b)) {
		return nil, nil, fmt.Errorf("%w: extension block length %d", ErrMalformed, n)
	}
	block, rest := b[:n], b[n:]
	var exts []Ext
	for len(block) > 0 {
		if len(exts) == MaxExtRecords {
			return nil, nil, fmt.Errorf("%w: more than %d extension records", ErrMalformed, MaxExtRecords)
		}
		var typ, l uint64
		if typ, block, err = uvarint(block); err != nil {
			return nil, nil, err
		}
		if l, block, err = uvarint(block); err != nil {
			return nil, nil, err
		}
		if l > uint64(len(block)) {
			return nil, nil, fmt.Errorf("%w: extension record length", ErrMalformed)
		}
		if len(exts) > 0 && typ <= exts[len(exts)-1].Type {
			return nil, nil, fmt.Errorf("%w: extension types not strictly increasing", ErrMalformed)
		}
		check, ok := extCheckers[typ]
		if !ok {
			return nil, nil, fmt.Errorf("%w: unknown extension type %d", ErrMalformed, typ)
		}
		if err := check(block[:l]); err != nil {
			return nil, nil, fmt.Errorf("p2p: extension %d: %w", typ, err)
		}
		exts = append(exts, Ext{Type: typ, Value: slices.Clone(block[:l])})
		block = block[l:]
	}
	return exts, rest, nil
}
