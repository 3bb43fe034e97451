package p2p

import (
	"bufio"
	"bytes"
	"math"
	"testing"
)

// Every decoder has a fuzz target; `go test` runs the seeds below and the
// corpus in testdata/fuzz.

func FuzzDecodeBatch(f *testing.F) {
	key := fixedKey(f, 1)
	tag := NewRunTag("fuzz")
	for _, n := range []int{1, 2, 64, 300} {
		b, _ := SignBatch(key, tag, uint64(n)*1000, 3, testCodes(n, n))
		f.Add(b.Raw)
	}
	b, _ := SignBatch(key, tag, math.MaxUint64, 3, []int8{1})
	f.Add(b.Raw)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBatch(data, tag)
		if err != nil {
			return
		}
		if len(b.Codes) == 0 || len(b.Codes) > MaxBatchCount || b.Last() < b.First || !bytes.Equal(b.Raw, data) {
			t.Fatalf("accepted an invalid batch: %+v", b)
		}
		if b.Machine != MachineOf(b.PubKey) {
			t.Fatal("machine not bound to key")
		}
		for _, c := range b.Codes {
			if c == -128 {
				t.Fatal("code -128 accepted")
			}
		}
	})
}

func FuzzDecodeState(f *testing.F) {
	key := fixedKey(f, 1)
	tag := NewRunTag("fuzz")
	raw, _ := EncodeState(key, tag, State{Time: 1 << 40, Count: 99})
	f.Add(raw)
	raw, _ = EncodeState(key, tag, State{Time: math.MaxUint64, Count: math.MaxUint64})
	f.Add(raw)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeState(data, tag)
		if err != nil {
			return
		}
		if s.Machine != MachineOf(s.PubKey) {
			t.Fatal("machine not bound to key")
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	tag := NewRunTag("fuzz")
	f.Add(encodeRequest(tag, SyncRequest{Kind: kindDigest}))
	f.Add(encodeRequest(tag, SyncRequest{Kind: kindFetch, Machine: 5, Lo: 1, Hi: 1 << 50}))
	f.Fuzz(func(t *testing.T, data []byte) {
		q, err := decodeRequest(data, tag)
		if err != nil {
			return
		}
		// One value, one encoding.
		if !bytes.Equal(encodeRequest(tag, q), data) {
			t.Fatalf("request %+v re-encodes differently", q)
		}
	})
}

func FuzzDecodeDigest(f *testing.F) {
	f.Add(encodeDigest(nil, nil, MaxDigestSize))
	f.Add(encodeDigest([]Holding{
		{Machine: 1, Samples: Ranges{{0, 10}}},
		{Machine: math.MaxUint64, Samples: Ranges{{0, 0}, {2, 1 << 40}, {1<<40 + 2, math.MaxUint64}}, Digest: 0xdeadbeef},
	}, []uint64{3, 9}, MaxDigestSize))
	f.Fuzz(func(t *testing.T, data []byte) {
		hs, excl, err := decodeDigest(data)
		if err != nil {
			return
		}
		for _, h := range hs {
			if !h.Samples.valid() || len(h.Samples) == 0 {
				t.Fatalf("invalid ranges %v", h.Samples)
			}
		}
		if !bytes.Equal(encodeDigest(hs, excl, MaxDigestSize), data) {
			t.Fatal("digest re-encodes differently")
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{3, 1, 2, 3})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := readFrame(bufioReader(data), 64)
		if err == nil && len(b) > 64 {
			t.Fatalf("frame of %d bytes over the limit", len(b))
		}
	})
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

func FuzzDecodeSnapshotInfo(f *testing.F) {
	in := SnapshotInfo{Count: 6, Size: 4096, Included: []Holding{{Machine: 3, Samples: Ranges{{0, 4}}}, {Machine: 9, Samples: Ranges{{10, 10}}}}, Excluded: []uint64{5}}
	b, _ := encodeSnapInfo(in)
	f.Add(b)
	b, _ = encodeSnapInfo(SnapshotInfo{Size: math.MaxUint64 - 3})
	f.Add(b)
	f.Add(make([]byte, 80))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := decodeSnapInfo(data)
		if err != nil {
			return
		}
		var n uint64
		for _, h := range in.Included {
			n += h.Samples.Count()
			if h.Digest != 0 {
				t.Fatal("a machine digest accepted")
			}
		}
		if n != in.Count || in.Size%4 != 0 {
			t.Fatalf("accepted an inconsistent info: %+v", in)
		}
		re, err := encodeSnapInfo(in)
		if err != nil || !bytes.Equal(re, data) {
			t.Fatal("a decoded info does not encode back to its bytes")
		}
	})
}
