package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	data := []float32{0, 1, -2.5, 3.1415927, 1e-3, -65504, 1.0 / 3}
	for _, d := range []DType{F32, F16, BF16} {
		t.Run(string(d), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.safetensors")
			ts := []Tensor{{"a", []int{7}, data}, {"b.c", []int{2, 3}, data[:6]}, {"empty", []int{0, 4}, nil}}
			if err := WriteFile(path, d, ts, map[string]string{"format": "pt"}); err != nil {
				t.Fatal(err)
			}
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Metadata["format"] != "pt" {
				t.Errorf("metadata %v", f.Metadata)
			}
			for _, want := range ts {
				info, ok := f.Info(want.Name)
				if !ok || info.DType != d || !slices.Equal(info.Shape, want.Shape) {
					t.Fatalf("%s: info %+v", want.Name, info)
				}
				got := make([]float32, len(want.Data))
				if err := f.ReadFloat32(want.Name, got); err != nil {
					t.Fatal(err)
				}
				for i, v := range want.Data {
					w := v
					switch d {
					case F16:
						w = HalfToFloat32(Float32ToHalf(v))
					case BF16:
						w = math.Float32frombits(uint32(Float32ToBF16(v)) << 16)
					}
					if got[i] != w {
						t.Errorf("%s[%d] = %v, want %v", want.Name, i, got[i], w)
					}
				}
			}
		})
	}
}

// Every finite half and bfloat16 value survives float32 and back.
func TestHalfConversionsExhaustive(t *testing.T) {
	for h := range 1 << 16 {
		f := HalfToFloat32(uint16(h))
		if f != f {
			continue
		}
		if back := Float32ToHalf(f); back != uint16(h) {
			t.Fatalf("half %#04x -> %v -> %#04x", h, f, back)
		}
		b := math.Float32frombits(uint32(h) << 16)
		if b == b && Float32ToBF16(b) != uint16(h) {
			t.Fatalf("bf16 %#04x -> %v -> %#04x", h, b, Float32ToBF16(b))
		}
	}
	for _, c := range []struct {
		f float32
		h uint16
	}{
		{65504, 0x7bff}, {65520, 0x7c00}, {65519, 0x7bff}, // max, overflow by rounding
		{5.960464477539063e-08, 0x0001}, {2.9802322387695312e-08, 0x0000}, // smallest subnormal, tie to even (0)
		{8.940696716308594e-08, 0x0002},                // 1.5 ulp ties to even (2)
		{1 + 1.0/2048, 0x3c00}, {1 + 3.0/2048, 0x3c02}, // ties to even in the normal range
		{float32(math.Inf(-1)), 0xfc00},
	} {
		if got := Float32ToHalf(c.f); got != c.h {
			t.Errorf("Float32ToHalf(%v) = %#04x, want %#04x", c.f, got, c.h)
		}
	}
	if h := Float32ToHalf(float32(math.NaN())); HalfToFloat32(h) == HalfToFloat32(h) {
		t.Error("NaN did not stay NaN")
	}
}

func TestParseHeaderErrors(t *testing.T) {
	for _, c := range []struct{ name, hdr, want string }{
		{"json", `{"a":`, "bad header JSON"},
		{"dtype", `{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}`, "unknown dtype"},
		{"size", `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, "do not hold"},
		{"negative", `{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, "bad shape"},
		{"offsets", `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}`, "2 entries"},
		{"overlap", `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, "overlap"},
		{"overflow", `{"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,4]}}`, "bad shape"},
		{"metadata", `{"__metadata__":{"a":1}}`, "__metadata__"},
	} {
		_, err := ParseHeader([]byte(c.hdr))
		if err == nil || !strings.HasPrefix(err.Error(), "safetensors: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	if err := WriteFile(good, F32, []Tensor{{"a", []int{4}, []float32{1, 2, 3, 4}}, {"i", []int{1}, []float32{0}}}, nil); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(good)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	huge := slices.Clone(b)
	binary.LittleEndian.PutUint64(huge, 1<<40)
	for _, c := range []struct{ name, path, want string }{
		{"missing", filepath.Join(dir, "nope"), "no such file"},
		{"short", write("short", b[:5]), "header length"},
		{"header length", write("huge", huge), "exceeds"},
		{"truncated", write("trunc", b[:len(b)-3]), "truncated"},
	} {
		f, err := Open(c.path)
		if err == nil {
			f.Close()
		}
		if err == nil || !strings.HasPrefix(err.Error(), "safetensors: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	f, err := Open(good)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.ReadFloat32("a", make([]float32, 3)); err == nil {
		t.Error("short destination accepted")
	}
	if err := f.ReadFloat32("zz", nil); err == nil {
		t.Error("missing tensor accepted")
	}
}

func TestIntegerAndF64(t *testing.T) {
	hdr := []byte(`{"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"x":{"dtype":"F64","shape":[1],"data_offsets":[8,16]}}`)
	var buf bytes.Buffer
	binary.Write(&buf, binary.LittleEndian, uint64(len(hdr)))
	buf.Write(hdr)
	buf.Write(make([]byte, 8))
	binary.Write(&buf, binary.LittleEndian, 1.5)
	p := filepath.Join(t.TempDir(), "i.safetensors")
	os.WriteFile(p, buf.Bytes(), 0o644)
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.ReadFloat32("ids", make([]float32, 1)); err == nil || !strings.Contains(err.Error(), "not a float type") {
		t.Errorf("err = %v", err)
	}
	x := make([]float32, 1)
	if err := f.ReadFloat32("x", x); err != nil || x[0] != 1.5 {
		t.Errorf("F64 read %v, %v", x, err)
	}
}

// FuzzParseHeader: any input either fails with an error or yields tensors
// whose sizes match their byte ranges and do not overlap.
func FuzzParseHeader(f *testing.F) {
	f.Add([]byte(`{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"__metadata__":{"format":"pt"}}`))
	f.Add([]byte(`{"a":{"dtype":"BF16","shape":[],"data_offsets":[0,2]},"b":{"dtype":"F16","shape":[0],"data_offsets":[2,2]}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "safetensors: ") {
				t.Fatalf("error without origin: %v", err)
			}
			return
		}
		var end int64
		for _, ti := range h.Tensors {
			if ti.Begin < end || ti.End-ti.Begin != ti.Elems()*int64(ti.DType.Size()) {
				t.Fatalf("invalid tensor accepted: %+v", ti)
			}
			end = ti.End
		}
		if end != h.DataLen {
			t.Fatalf("DataLen %d, tensors end at %d", h.DataLen, end)
		}
	})
}

// A written model is 0644 like the rest of its directory, not CreateTemp's 0600.
func TestWriteFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := WriteFile(path, F32, []Tensor{{Name: "w", Shape: []int{2}, Data: []float32{1, 2}}}, nil); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, want 0644", fi.Mode().Perm())
	}
}
