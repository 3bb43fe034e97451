package store

import (
	"strings"
	"testing"
)

// The estimator's onesided member: canonical form, round trip, a field
// that tells manifests apart, and refused together with public data.
func TestManifestOneSided(t *testing.T) {
	m := Manifest{Run: "r", Dist: "rademacher", Eps: 1e-3, LR: 1e-4, Quant: "q", Estimator: &EstimatorSpec{OneSided: 4, Scale: map[string]int{"w": -8}}}
	got, err := m.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), `"estimator":{"onesided":4,"scale":{"w":-8}}`) {
		t.Fatalf("canonical %s", got)
	}
	back, err := ParseManifest(got)
	if err != nil {
		t.Fatal(err)
	}
	if d := back.diff(m); d != "" || back.Estimator.OneSided != 4 {
		t.Fatalf("round trip differs in %q: %+v", d, back.Estimator)
	}
	c, err := back.Config()
	if err != nil || c.Estimator.OneSided != 4 {
		t.Fatalf("config %+v: %v", c.Estimator, err)
	}
	two := m
	two.Estimator = &EstimatorSpec{OneSided: 8, Scale: map[string]int{"w": -8}}
	if d := m.diff(two); d != "estimator" {
		t.Fatalf("onesided 4 vs 8 differ in %q", d)
	}
	pub := m
	pub.Data = &PublicData{BatchSize: 4, Tolerance: 1e-3}
	if _, err := pub.Config(); err == nil || !strings.Contains(err.Error(), "onesided") {
		t.Fatalf("onesided with public data: %v", err)
	}
	pub.Estimator = &EstimatorSpec{Scale: map[string]int{"w": -8}}
	if _, err := pub.Config(); err != nil {
		t.Fatalf("public data with scale alone: %v", err)
	}
	for _, bad := range []int{-1, 1 << 20} {
		m.Estimator = &EstimatorSpec{OneSided: bad}
		if _, err := m.Config(); err == nil {
			t.Errorf("onesided %d accepted", bad)
		}
	}
}
