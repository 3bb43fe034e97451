package testnet

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// The chart is well-formed SVG with one line per peer in each panel.
func TestChartSVG(t *testing.T) {
	var pts []Point
	for i := range 10 {
		for _, name := range []string{"node0", "node1", "node2"} {
			pts = append(pts, Point{Node: name, Elapsed: time.Duration(i) * time.Second, Updates: uint64(100 * i), EvalLoss: 2.3 / float64(i+1)})
		}
	}
	var b strings.Builder
	ch := Chart{Title: "a <test> & more", Points: pts, BaseLoss: 2.3, Marks: []Mark{{Elapsed: 3 * time.Second, Label: "kill node1"}}}
	if err := ch.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	if lines := len(polylines(t, b.String())); lines != 6 {
		t.Errorf("%d polylines, want 2 panels × 3 peers", lines)
	}
}

// A linear chart fits its axis to losses within a small range: every point
// lies inside the panel and the curve spans most of its height.
func TestChartLinear(t *testing.T) {
	var pts []Point
	for i := range 10 {
		pts = append(pts, Point{Node: "a", Updates: uint64(100 * i), EvalLoss: 3.59 - 0.05*float64(i)})
	}
	var b strings.Builder
	if err := (Chart{Points: pts, BaseLoss: 3.59, Linear: true}).WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	if !strings.Contains(svg, "linear)") {
		t.Error("the axis label does not say linear")
	}
	lo, hi := 1e9, -1e9
	for _, pts := range polylines(t, svg) {
		for _, xy := range strings.Fields(pts) {
			var x, y float64
			if _, err := fmt.Sscanf(xy, "%g,%g", &x, &y); err != nil {
				t.Fatal(err)
			}
			lo, hi = min(lo, y), max(hi, y)
		}
	}
	// The panel spans y 60..360.
	if lo < 60 || hi > 360 || hi-lo < 150 {
		t.Errorf("points span y %.0f..%.0f: want inside 60..360 and over half the panel", lo, hi)
	}
}

// polylines checks that svg is well-formed XML and returns the points of its
// polylines.
func polylines(t *testing.T, svg string) []string {
	t.Helper()
	var out []string
	dec := xml.NewDecoder(strings.NewReader(svg))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("not well-formed: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			for _, a := range se.Attr {
				if a.Name.Local == "points" {
					out = append(out, a.Value)
				}
			}
		}
	}
}
