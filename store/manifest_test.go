package store

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
)

// TestManifestCanonical pins the canonical serialisation (docs/PROTOCOL.md §9).
func TestManifestCanonical(t *testing.T) {
	m := Manifest{
		Run: "r\u00e9\"\n", Dist: "rademacher", Eps: 1e-3, LR: 0.0001, LRWarmup: 10, Quant: "q",
		Params: map[string]string{"trainable": "h\\.0", "a": ""}, GradBound: 0.5, MaxSamples: 1 << 22,
		Admission: "closed", Admit: []string{"0000000000000001"},
	}
	m.BaseDigest[0], m.BaseDigest[31] = 0xab, 0x01
	got, err := m.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"admission":"closed","admit":["0000000000000001"],"base_digest":"ab000000000000000000000000000000000000000000000000000000000000` +
		`01","dist":"rademacher","eps":0.001,"format_version":1,"grad_bound":0.5,"lr":0.0001,"lr_warmup":10,` +
		`"max_samples":4194304,"params":{"a":"","trainable":"h\\.0"},"quant":"q","run":"ré\"\n"}`
	if string(got) != want {
		t.Fatalf("canonical\n%s\nwant\n%s", got, want)
	}
	back, err := ParseManifest(got)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := back.Canonical(); !bytes.Equal(again, got) || back.diff(m) != "" {
		t.Fatalf("round trip %s (diff %q)", again, back.diff(m))
	}
}

// TestManifestNumbers checks the ECMAScript number format (RFC 8785).
func TestManifestNumbers(t *testing.T) {
	tenth := 0.1
	for _, c := range []struct {
		v    float64
		want string
	}{
		{0, "0"}, {math.Copysign(0, -1), "0"}, {1, "1"}, {0.0001, "0.0001"}, {1e-6, "0.000001"}, {1e-7, "1e-7"},
		{1.5e-7, "1.5e-7"}, {123456789, "123456789"}, {1e20, "100000000000000000000"}, {1e21, "1e+21"},
		{2.5e300, "2.5e+300"}, {1e-300, "1e-300"}, {tenth + 0.2, "0.30000000000000004"}, {-3e-5, "-0.00003"},
		{5e-324, "5e-324"}, {math.MaxFloat64, "1.7976931348623157e+308"},
	} {
		if got := string(appendJSONNumber(nil, c.v)); got != c.want {
			t.Errorf("%g: %s, want %s", c.v, got, c.want)
		}
	}
}

// TestManifestOldForms reads what older homes and stores hold: indented, a
// base_digest array, format_version 0 or 1. Their canonical form is the same.
func TestManifestOldForms(t *testing.T) {
	old := `{
  "format_version": 0,
  "run": "x",
  "base_digest": [171,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1],
  "dist": "rademacher",
  "eps": 1e-3,
  "lr": 1E-4,
  "quant": "q",
  "params": {"trainable": ""}
}
`
	m, err := ParseManifest([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	if m.BaseDigest[0] != 0xab || m.BaseDigest[31] != 1 || m.LR != 1e-4 || m.FormatVersion != ManifestVersion {
		t.Fatalf("%+v", m)
	}
	c, _ := m.Canonical()
	want := `{"base_digest":"ab00000000000000000000000000000000000000000000000000000000000001","dist":"rademacher",` +
		`"eps":0.001,"format_version":1,"lr":0.0001,"params":{"trainable":""},"quant":"q","run":"x"}`
	if string(c) != want {
		t.Fatalf("canonical %s\nwant      %s", c, want)
	}
	m2, err := ParseManifest(c)
	if err != nil || m2.diff(m) != "" {
		t.Fatalf("%v %q", err, m2.diff(m))
	}
}

func TestManifestRefused(t *testing.T) {
	for name, b := range map[string]string{
		"unknown member":  `{"run":"x","dist":"rademacher","eps":1,"lr":1,"quant":"q","base_digest":"` + strings.Repeat("0", 64) + `","new_rule":1}`,
		"case folding":    `{"Run":"x"}`,
		"repeated member": `{"run":"x","run":"y"}`,
		"version 2":       `{"format_version":2,"run":"x"}`,
		"short digest":    `{"base_digest":"abcd"}`,
		"upper-case hex":  `{"base_digest":"` + strings.Repeat("A", 64) + `"}`,
		"array of 31":     `{"base_digest":[` + strings.Repeat("0,", 30) + `0]}`,
		"trailing data":   `{"run":"x"} {}`,
		"not an object":   `[1]`,
	} {
		if _, err := ParseManifest([]byte(b)); !errors.Is(err, ErrManifestFormat) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, m := range map[string]Manifest{
		"nan":        {Eps: math.NaN()},
		"huge int":   {MaxSamples: 1 << 53},
		"not utf-8":  {Run: "\xff"},
		"neg pow":    {PowBits: -1},
		"inf bound":  {GradBound: math.Inf(1)},
		"bad params": {Params: map[string]string{"\xfe": ""}},
	} {
		if _, err := m.Canonical(); !errors.Is(err, ErrManifestFormat) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
