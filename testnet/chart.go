package testnet

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Mark is an event drawn on the chart's time axis (a kill, a join).
type Mark struct {
	Elapsed time.Duration
	Label   string
	Color   string // empty: red for a label starting "kill", else green
}

// Chart is the eval-loss chart of a run: one line per peer, against the
// updates its weights included and against wall time.
type Chart struct {
	Title    string
	XLabel   string // of the left panel; empty: total updates in the weights
	Points   []Point
	BaseLoss float64
	Marks    []Mark
	// MarkLegend explains the marks (empty: the churn tests' kill/start legend).
	MarkLegend string
	// Linear draws the eval loss on a linear axis fitted to the data, for
	// curves that stay within a small range (the default axis is logarithmic
	// in powers of ten, for losses that fall by orders of magnitude).
	Linear bool
}

var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"}

// WriteSVG draws the chart as an SVG document.
func (c Chart) WriteSVG(w io.Writer) error {
	const W, pw, ph, top, left = 1000, 400, 300, 60, 80
	var b strings.Builder // the body; the header follows once the legend's height is known

	byNode := map[string][]Point{}
	var names []string
	ymax, ymin, xmaxU, xmaxT := c.BaseLoss, c.BaseLoss, 1.0, 1.0
	for _, p := range c.Points {
		if _, ok := byNode[p.Node]; !ok {
			names = append(names, p.Node)
		}
		byNode[p.Node] = append(byNode[p.Node], p)
		ymax = math.Max(ymax, p.EvalLoss)
		if p.EvalLoss > 0 {
			ymin = math.Min(ymin, p.EvalLoss)
		}
		xmaxU = math.Max(xmaxU, float64(p.Updates))
		xmaxT = math.Max(xmaxT, p.Elapsed.Seconds())
	}
	for _, m := range c.Marks {
		xmaxT = math.Max(xmaxT, m.Elapsed.Seconds())
	}
	sort.Strings(names)
	// Losses fall by orders of magnitude: the y axis is logarithmic.
	lo, hi := math.Log10(logFloor(ymin)), math.Log10(logCeil(ymax*1.05))
	scale, yticks := "log scale", logTicks(lo, hi)
	yfrac := func(v float64) float64 { return (math.Log10(math.Max(v, math.Pow(10, lo))) - lo) / (hi - lo) }
	if c.Linear {
		step := logCeil((ymax - ymin) / 5)
		if step <= 0 || math.IsInf(step, 0) || math.IsNaN(step) {
			step = 1
		}
		flo, fhi := math.Floor(ymin/step)*step, math.Ceil(ymax/step)*step
		if fhi <= flo {
			fhi = flo + step
		}
		scale, yticks = "linear", nil
		for v := flo; v <= fhi+step/2; v += step {
			yticks = append(yticks, v)
		}
		yfrac = func(v float64) float64 { return (v - flo) / (fhi - flo) }
	}
	panels := []struct {
		x0     int
		xlabel string
		xmax   float64
		x      func(Point) float64
	}{
		{left, cmp.Or(c.XLabel, "total updates in the weights"), niceCeil(xmaxU), func(p Point) float64 { return float64(p.Updates) }},
		{left + pw + 110, "wall time (s)", niceCeil(xmaxT), func(p Point) float64 { return p.Elapsed.Seconds() }},
	}
	for pi, pn := range panels {
		sx := func(v float64) float64 { return float64(pn.x0) + v/pn.xmax*pw }
		sy := func(v float64) float64 { return top + ph - yfrac(v)*ph }
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", pn.x0, top, pw, ph)
		for _, t := range ticks(pn.xmax) {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n",
				sx(t), top, sx(t), top+ph, sx(t), top+ph+16, fmtTick(t))
		}
		for _, t := range yticks {
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
				pn.x0, sy(t), pn.x0+pw, sy(t), pn.x0-6, sy(t)+4, fmtTick(t))
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", pn.x0+pw/2, top+ph+36, pn.xlabel)
		fmt.Fprintf(&b, `<text transform="translate(%d,%d) rotate(-90)" text-anchor="middle">eval loss (nats / completion token, %s)</text>`+"\n", pn.x0-50, top+ph/2, scale)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#000" stroke-dasharray="6,4"/><text x="%d" y="%.1f" text-anchor="end">base model %.3f</text>`+"\n",
			pn.x0, sy(c.BaseLoss), pn.x0+pw, sy(c.BaseLoss), pn.x0+pw-4, sy(c.BaseLoss)-4, c.BaseLoss)
		if pi == 1 {
			for _, m := range c.Marks {
				x := sx(m.Elapsed.Seconds())
				color := "#2ca02c"
				if strings.HasPrefix(m.Label, "kill") {
					color = "#d62728"
				}
				if m.Color != "" {
					color = m.Color
				}
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-opacity="0.6"><title>%s</title></line>`+"\n",
					x, top, x, top+ph, color, esc(m.Label))
			}
		}
		for i, name := range names {
			color := palette[i%len(palette)]
			var pts []string
			for _, p := range byNode[name] {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", sx(pn.x(p)), sy(p.EvalLoss)))
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", color, strings.Join(pts, " "))
			for _, pt := range pts {
				xy := strings.Split(pt, ",")
				fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="2" fill="%s"/>`, xy[0], xy[1], color)
			}
			b.WriteString("\n")
		}
	}
	// Legend entries advance by their text's width (about 7 px a character
	// at the chart's font size) and wrap into rows, so long series names
	// neither overlap nor run off the chart; the chart grows by the rows.
	const legendTop = top + ph + 52
	x, y := left, legendTop
	for i, name := range names {
		width := 18 + 7*len(name) + 16
		if x > left && x+width > W-20 {
			x, y = left, y+16
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="14" height="4" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			x, y, palette[i%len(palette)], x+18, y+5, esc(name))
		x += width
	}
	H := y + 28
	if len(c.Marks) > 0 {
		legend := c.MarkLegend
		if legend == "" {
			legend = "red: kill -9, green: peer started"
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", W-20, H-5, esc(legend))
		H += 12
	}
	var head strings.Builder
	fmt.Fprintf(&head, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", W, H)
	fmt.Fprintf(&head, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	fmt.Fprintf(&head, `<text x="%d" y="24" font-size="16" text-anchor="middle">%s</text>`+"\n", W/2, esc(c.Title))
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, head.String()+b.String())
	return err
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// logCeil and logFloor round v to 1, 2 or 5 times a power of ten.
func logCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func logFloor(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{5, 2, 1} {
		if v >= m*p {
			return m * p
		}
	}
	return p
}

// logTicks are 1, 2 and 5 times the powers of ten from 10^lo to 10^hi.
func logTicks(lo, hi float64) []float64 {
	var out []float64
	for e := math.Floor(lo); e <= hi; e++ {
		for _, m := range []float64{1, 2, 5} {
			if v := m * math.Pow(10, e); v >= math.Pow(10, lo)*0.9999 && v <= math.Pow(10, hi)*1.0001 {
				out = append(out, v)
			}
		}
	}
	return out
}

// niceCeil rounds v up to a round multiple of a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// ticks are five evenly spaced values from 0 to max.
func ticks(max float64) []float64 {
	var out []float64
	for i := range 6 {
		out = append(out, max*float64(i)/5)
	}
	return out
}

func fmtTick(v float64) string {
	return strconv.FormatFloat(v, 'g', 4, 64)
}
