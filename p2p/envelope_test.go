package p2p

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func TestBatchV2RoundTrip(t *testing.T) {
	key := fixedKey(t, 1)
	tag := NewRunTag("run")
	basis := Basis{
		{Machine: 3, Samples: Ranges{{0, 99}, {120, 130}}},
		{Machine: 1 << 60, Samples: Ranges{{7, 7}}},
	}
	exts := []Ext{{Type: ExtBasis, Value: AppendBasis(nil, basis)}}
	b, err := SignBatchExt(key, tag, 500, 127, []int8{1, -2, 3}, exts)
	if err != nil {
		t.Fatal(err)
	}
	if b.Raw[0] != BatchVersion2 {
		t.Fatalf("version byte %d, want 2", b.Raw[0])
	}
	got, err := DecodeBatch(b.Raw, tag)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := got.Ext(ExtBasis)
	if !ok {
		t.Fatal("decoded batch lacks its basis")
	}
	back, err := DecodeBasis(v)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != 2 || back[0].Machine != 3 || !slices.Equal(back[0].Samples, basis[0].Samples) ||
		back[1].Machine != 1<<60 || !slices.Equal(back[1].Samples, basis[1].Samples) {
		t.Fatalf("basis round trip: %+v", back)
	}
	if back.Count() != 100+11+1 {
		t.Errorf("basis count %d", back.Count())
	}
	if got.First != 500 || !slices.Equal(got.Codes, []int8{1, -2, 3}) {
		t.Fatalf("decoded %+v", got)
	}
	// Without extensions SignBatchExt makes exactly the version 1 batch.
	v1, err := SignBatch(key, tag, 500, 127, []int8{1, -2, 3})
	if err != nil {
		t.Fatal(err)
	}
	v1b, err := SignBatchExt(key, tag, 500, 127, []int8{1, -2, 3}, nil)
	if err != nil || !bytes.Equal(v1.Raw, v1b.Raw) || v1.Raw[0] != WireVersion {
		t.Fatalf("v1 batch changed: %v", err)
	}
	// Every byte of the extension block is signed.
	for i := len(v1.Raw) - 64; i < len(b.Raw)-64; i++ {
		bad := slices.Clone(b.Raw)
		bad[i] ^= 1
		if _, err := DecodeBatch(bad, tag); err == nil {
			t.Fatalf("byte %d of the extension block flipped and still valid", i)
		}
	}
}

func TestBatchV2Refusals(t *testing.T) {
	key := fixedKey(t, 1)
	tag := NewRunTag("run")
	basis := AppendBasis(nil, Basis{{Machine: 1, Samples: Ranges{{0, 9}}}})
	for _, c := range []struct {
		name string
		exts []Ext
	}{
		{"unknown type", []Ext{{Type: 99, Value: nil}}},
		{"duplicate type", []Ext{{ExtBasis, basis}, {ExtBasis, basis}}},
		{"bad basis", []Ext{{ExtBasis, []byte{1, 2}}}},
		{"too large", []Ext{{ExtBasis, AppendBasis(nil, hugeBasis())}}},
	} {
		if _, err := SignBatchExt(key, tag, 0, 127, []int8{1}, c.exts); err == nil {
			t.Errorf("%s: signed", c.name)
		}
	}
	// Decoding refuses what signing refuses, as malformed.
	b, err := SignBatchExt(key, tag, 0, 127, []int8{1}, []Ext{{ExtBasis, basis}})
	if err != nil {
		t.Fatal(err)
	}
	for _, mut := range []func([]byte) []byte{
		func(r []byte) []byte { r[0] = WireVersion; return r }, // v1 with a trailing block
		func(r []byte) []byte { return append(r[:len(r)-64-len(basis)-3], r[len(r)-64:]...) },
	} {
		r := mut(slices.Clone(b.Raw))
		if _, err := DecodeBatch(r, tag); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrSignature) {
			t.Errorf("mutated v2 batch: %v", err)
		}
	}
}

// hugeBasis is a valid basis whose encoding exceeds MaxExtSize.
func hugeBasis() Basis {
	var rs Ranges
	for i := uint64(0); i < MaxExtSize; i++ {
		rs = append(rs, Range{3 * i, 3 * i})
	}
	return Basis{{Machine: 1, Samples: rs}}
}

func FuzzDecodeBasis(f *testing.F) {
	f.Add(AppendBasis(nil, Basis{{Machine: 1, Samples: Ranges{{0, 9}, {20, 30}}}}))
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		bs, err := DecodeBasis(b)
		if err != nil {
			return
		}
		if !bytes.Equal(AppendBasis(nil, bs), b) {
			t.Fatalf("basis %x decodes but re-encodes differently", b)
		}
	})
}
