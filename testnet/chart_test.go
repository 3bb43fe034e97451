package testnet

import (
	"encoding/xml"
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
	dec := xml.NewDecoder(strings.NewReader(b.String()))
	lines := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			lines++
		}
	}
	if lines != 6 {
		t.Errorf("%d polylines, want 2 panels × 3 peers", lines)
	}
}
