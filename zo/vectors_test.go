package zo

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"testing"
)

// Known answers from Random123's tests/kat_vectors (the three philox4x32 10 lines).
func TestPhiloxKnownAnswers(t *testing.T) {
	for _, c := range []struct {
		ctr  [4]uint32
		key  [2]uint32
		want [4]uint32
	}{
		{[4]uint32{0, 0, 0, 0}, [2]uint32{0, 0}, [4]uint32{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
		{[4]uint32{^uint32(0), ^uint32(0), ^uint32(0), ^uint32(0)}, [2]uint32{^uint32(0), ^uint32(0)},
			[4]uint32{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
		{[4]uint32{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, [2]uint32{0xa4093822, 0x299f31d0},
			[4]uint32{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
	} {
		if got := Philox4x32(c.ctr, c.key); got != c.want {
			t.Errorf("Philox4x32(%08x, %08x) = %08x, want %08x", c.ctr, c.key, got, c.want)
		}
	}
}

type vectorFile struct {
	Seeds []struct {
		Run, Machine, Sample string
		Key, Stream          [2]uint32
		Block0               [4]uint32        `json:"block0"`
		Block240             [4]uint32        `json:"block_2_40"`
		CodeUniform          float64          `json:"code_uniform"`
		Rademacher64         []int32          `json:"rademacher_first64"`
		Gauss16              []int32          `json:"gauss4_first16"`
		RademacherAt         map[string]int32 `json:"rademacher_at"`
		GaussAt              map[string]int32 `json:"gauss4_at"`
	}
	Updates []struct {
		Machine, Sample string
		Exp             uint8
		Code            int8
		Hash            string
	}
}

func u64(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The vectors come from testdata/reference.py, an independent implementation
// written from docs/PROTOCOL.md.
func TestReferenceVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vf vectorFile
	if err := json.Unmarshal(raw, &vf); err != nil {
		t.Fatal(err)
	}
	if len(vf.Seeds) == 0 || len(vf.Updates) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vf.Seeds {
		s := DeriveSeed(v.Run, u64(t, v.Machine), u64(t, v.Sample))
		if s.Key != v.Key || s.Stream != v.Stream {
			t.Errorf("DeriveSeed(%q, %s, %s) = %+v, want key %08x stream %08x", v.Run, v.Machine, v.Sample, s, v.Key, v.Stream)
			continue
		}
		if s.Block(0) != v.Block0 || s.Block(1<<40) != v.Block240 {
			t.Errorf("%q: blocks differ", v.Run)
		}
		if got := s.CodeUniform(); got != v.CodeUniform {
			t.Errorf("%q: CodeUniform = %v, want %v", v.Run, got, v.CodeUniform)
		}
		check := func(d Dist, first []int32, at map[string]int32) {
			got := make([]int32, len(first))
			d.Fill(s, 0, got)
			for i := range got {
				if got[i] != first[i] {
					t.Fatalf("%q %v: z[%d] = %d, want %d", v.Run, d, i, got[i], first[i])
				}
			}
			for off, want := range at {
				var z [1]int32
				d.Fill(s, u64(t, off), z[:])
				if z[0] != want {
					t.Errorf("%q %v: z[%s] = %d, want %d", v.Run, d, off, z[0], want)
				}
			}
		}
		check(Rademacher, v.Rademacher64, v.RademacherAt)
		check(Gauss4, v.Gauss16, v.GaussAt)
	}
	for _, v := range vf.Updates {
		u := Update{Machine: u64(t, v.Machine), Sample: u64(t, v.Sample), Exp: v.Exp, Code: v.Code}
		if h := UpdateHash(u); hex.EncodeToString(h[:]) != v.Hash {
			t.Errorf("UpdateHash(%+v) = %x, want %s", u, h, v.Hash)
		}
	}
}
