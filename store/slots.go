package store

import (
	"fmt"

	"github.com/zopeer/zopeer/zo"
)

// An update's logged value is (exp, code), and in a FedKSeed-Pro run
// (manifest pool_choices, docs/PROTOCOL.md §12.1) its pool slot after them:
// the slot is part of the value, so a duplicate must carry the same one and a
// different one is an equivocation. The length is fixed by the manifest; a
// value of the other length is a corrupt log.

// valueLen is the length of an update's logged value in this run.
func (s *Store) valueLen() int {
	if s.man.PoolChoices > 0 {
		return 3
	}
	return 2
}

// appendValue appends u's logged value.
func appendValue(b []byte, u zo.Update) []byte {
	b = append(b, u.Exp, byte(u.Code))
	if u.Slotted {
		b = append(b, u.Slot)
	}
	return b
}

// readValue sets u's value from a logged one.
func (s *Store) readValue(u *zo.Update, v []byte) error {
	if len(v) != s.valueLen() {
		return fmt.Errorf("%w: update value of %d bytes, want %d", ErrCorrupt, len(v), s.valueLen())
	}
	u.Exp, u.Code = v[0], int8(v[1])
	if len(v) == 3 {
		u.Slotted, u.Slot = true, v[2]
	}
	return nil
}
