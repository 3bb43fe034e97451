// Package safetensors reads and writes the safetensors format used by
// Hugging Face checkpoints: an 8-byte little-endian header length, a JSON
// header mapping tensor names to dtype, shape and byte offsets, then the raw
// little-endian data. Floating-point tensors (F32, F16, BF16) convert to
// float32 on read.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// DType names an element type as spelled in the header.
type DType string

// Element types. F64, F32, F16 and BF16 convert to float32; the others are
// recognised so that files holding them still parse.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U8   DType = "U8"
	Bool DType = "BOOL"
)

// Size is the element size in bytes, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16, I16:
		return 2
	case I8, U8, Bool:
		return 1
	}
	return 0
}

// Info describes one tensor in a file. Begin and End are byte offsets into
// the data section.
type Info struct {
	Name       string
	DType      DType
	Shape      []int
	Begin, End int64
}

// Elems is the number of elements.
func (t Info) Elems() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// Header is a parsed file header.
type Header struct {
	Tensors  []Info // in data order
	Metadata map[string]string
	DataLen  int64 // bytes the data section must hold
}

// MaxHeaderLen bounds the JSON header; real headers are well below 10 MB.
const MaxHeaderLen = 100 << 20

// maxElems bounds one tensor so that sizes never overflow.
const maxElems = 1 << 40

type rawInfo struct {
	DType       DType   `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// ParseHeader parses and validates the JSON header: every tensor has a known
// dtype, a non-negative shape whose size matches its byte range, and ranges
// that do not overlap.
func ParseHeader(b []byte) (*Header, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("safetensors: bad header JSON: %w", err)
	}
	h := &Header{}
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &h.Metadata); err != nil {
				return nil, fmt.Errorf("safetensors: bad __metadata__: %w", err)
			}
			continue
		}
		var r rawInfo
		if err := json.Unmarshal(msg, &r); err != nil {
			return nil, fmt.Errorf("safetensors: tensor %q: %w", name, err)
		}
		size := int64(r.DType.Size())
		if size == 0 {
			return nil, fmt.Errorf("safetensors: tensor %q: unknown dtype %q", name, r.DType)
		}
		if len(r.DataOffsets) != 2 {
			return nil, fmt.Errorf("safetensors: tensor %q: data_offsets must have 2 entries, has %d", name, len(r.DataOffsets))
		}
		t := Info{Name: name, DType: r.DType, Begin: r.DataOffsets[0], End: r.DataOffsets[1]}
		n := int64(1)
		for _, d := range r.Shape {
			if d < 0 || d > maxElems || (d > 0 && n > maxElems/d) {
				return nil, fmt.Errorf("safetensors: tensor %q: bad shape %v", name, r.Shape)
			}
			n *= d
			t.Shape = append(t.Shape, int(d))
		}
		if t.Begin < 0 || t.End < t.Begin || t.End-t.Begin != n*size {
			return nil, fmt.Errorf("safetensors: tensor %q: offsets [%d, %d) do not hold %d %s elements", name, t.Begin, t.End, n, t.DType)
		}
		h.Tensors = append(h.Tensors, t)
	}
	sort.Slice(h.Tensors, func(i, j int) bool {
		a, b := h.Tensors[i], h.Tensors[j]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		return a.End < b.End
	})
	for i, t := range h.Tensors {
		if i > 0 && t.Begin < h.Tensors[i-1].End {
			return nil, fmt.Errorf("safetensors: tensors %q and %q overlap", h.Tensors[i-1].Name, t.Name)
		}
		h.DataLen = max(h.DataLen, t.End)
	}
	return h, nil
}

// File is an open safetensors file; tensors are read on demand.
type File struct {
	Header
	path   string
	f      *os.File
	data   int64 // offset of the data section
	byName map[string]int
}

// Open reads and checks the header of the file at path. The file must be
// long enough for every tensor the header lists.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	sf, err := open(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	return sf, nil
}

func open(f *os.File, path string) (*File, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	var lenBuf [8]byte
	if _, err := io.ReadFull(f, lenBuf[:]); err != nil {
		return nil, fmt.Errorf("safetensors: %s: reading header length: %w", path, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderLen || int64(n) > st.Size()-8 {
		return nil, fmt.Errorf("safetensors: %s: header length %d exceeds file size %d or limit", path, n, st.Size())
	}
	hb := make([]byte, n)
	if _, err := io.ReadFull(f, hb); err != nil {
		return nil, fmt.Errorf("safetensors: %s: reading header: %w", path, err)
	}
	h, err := ParseHeader(hb)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	sf := &File{Header: *h, path: path, f: f, data: 8 + int64(n), byName: make(map[string]int, len(h.Tensors))}
	if have := st.Size() - sf.data; have < h.DataLen {
		return nil, fmt.Errorf("safetensors: %s: truncated: data section has %d bytes, tensors need %d", path, have, h.DataLen)
	}
	for i, t := range h.Tensors {
		sf.byName[t.Name] = i
	}
	return sf, nil
}

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }

// Info returns the description of the named tensor.
func (f *File) Info(name string) (Info, bool) {
	i, ok := f.byName[name]
	if !ok {
		return Info{}, false
	}
	return f.Tensors[i], true
}

// ReadFloat32 reads the named floating-point tensor into dst, which must have
// exactly its number of elements, converting F64, F16 and BF16 to float32.
func (f *File) ReadFloat32(name string, dst []float32) error {
	t, ok := f.Info(name)
	if !ok {
		return fmt.Errorf("safetensors: %s: no tensor %q", f.path, name)
	}
	if int64(len(dst)) != t.Elems() {
		return fmt.Errorf("safetensors: tensor %q has %d elements, destination %d", name, t.Elems(), len(dst))
	}
	switch t.DType {
	case F64, F32, F16, BF16:
	default:
		return fmt.Errorf("safetensors: tensor %q: dtype %s is not a float type", name, t.DType)
	}
	// Read in chunks so the temporary buffer stays small for big tensors.
	const chunk = 1 << 20
	buf := make([]byte, min(int64(chunk), t.End-t.Begin))
	size := int64(t.DType.Size())
	for off, done := t.Begin, 0; off < t.End; {
		nb := min(int64(len(buf)), t.End-off)
		if _, err := f.f.ReadAt(buf[:nb], f.data+off); err != nil {
			return fmt.Errorf("safetensors: %s: reading %q: %w", f.path, name, err)
		}
		ne := int(nb / size)
		Decode(t.DType, dst[done:done+ne], buf[:nb])
		off += nb
		done += ne
	}
	return nil
}

// Decode converts little-endian elements of a float dtype in src to dst.
func Decode(d DType, dst []float32, src []byte) {
	switch d {
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:])))
		}
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
		}
	case F16:
		for i := range dst {
			dst[i] = HalfToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	}
}

// Encode converts dst elements to dtype d (F32, F16 or BF16), rounding to nearest even.
func Encode(d DType, dst []byte, src []float32) {
	switch d {
	case F32:
		for i, v := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case BF16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], Float32ToBF16(v))
		}
	case F16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], Float32ToHalf(v))
		}
	}
}

// HalfToFloat32 converts an IEEE binary16 value exactly.
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf, nan
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal: value = mant·2^-24, exact in float32.
	v := float32(mant) * (1.0 / (1 << 24))
	if sign != 0 {
		v = -v
	}
	return v
}

// Float32ToHalf rounds to the nearest binary16, ties to even.
func Float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 // NaN
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		// Subnormal half: shift the full significand into place and round.
		m := mant | 0x800000
		shift := uint32(14 - e)
		h := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // may carry into the exponent, which is the correct rounding
	}
	return sign | uint16(h)
}

// Float32ToBF16 rounds to the nearest bfloat16, ties to even.
func Float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40 // keep NaN a NaN
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// Tensor is one float32 tensor to write.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// Write writes tensors in the given order as dtype d (F32, F16 or BF16),
// with the header padded to 8 bytes as the reference implementation does.
func Write(w io.Writer, d DType, tensors []Tensor, metadata map[string]string) error {
	switch d {
	case F32, F16, BF16:
	default:
		return fmt.Errorf("safetensors: cannot write dtype %q", d)
	}
	hdr := make(map[string]any, len(tensors)+1)
	if len(metadata) > 0 {
		hdr["__metadata__"] = metadata
	}
	var off int64
	for _, t := range tensors {
		n := int64(1)
		for _, s := range t.Shape {
			n *= int64(s)
		}
		if n != int64(len(t.Data)) {
			return fmt.Errorf("safetensors: tensor %q: shape %v does not match %d elements", t.Name, t.Shape, len(t.Data))
		}
		if _, dup := hdr[t.Name]; dup || t.Name == "__metadata__" {
			return fmt.Errorf("safetensors: tensor name %q repeated or reserved", t.Name)
		}
		end := off + n*int64(d.Size())
		hdr[t.Name] = rawInfo{DType: d, Shape: toInt64(t.Shape), DataOffsets: []int64{off, end}}
		off = end
	}
	hb, err := json.Marshal(hdr)
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if pad := (8 - len(hb)%8) % 8; pad > 0 {
		hb = append(hb, []byte(strings.Repeat(" ", pad))...)
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hb)))
	if _, err := w.Write(slices.Concat(lenBuf[:], hb)); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	buf := make([]byte, 0, 1<<20)
	for _, t := range tensors {
		for data := t.Data; len(data) > 0; {
			n := min(len(data), cap(buf)/d.Size())
			buf = buf[:n*d.Size()]
			Encode(d, buf, data[:n])
			if _, err := w.Write(buf); err != nil {
				return fmt.Errorf("safetensors: %w", err)
			}
			data = data[n:]
		}
	}
	return nil
}

// WriteFile writes tensors to path (see Write), replacing it atomically;
// the file is 0644.
func WriteFile(path string, d DType, tensors []Tensor, metadata map[string]string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".safetensors-*")
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = Write(tmp, d, tensors, metadata); err != nil {
		return err
	}
	// CreateTemp makes the file 0600; a model is as readable as the rest of
	// its directory (config.json and the tokenizer are written 0644).
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

func toInt64(s []int) []int64 {
	r := make([]int64, len(s))
	for i, v := range s {
		r[i] = int64(v)
	}
	return r
}
