package testnet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPoolLearning compares learning in pool mode (K = 256, 1024, 4096;
// FedKSeed-Pro with m = 16 and m = 256 candidate slots at K = 256 and 1024)
// with full mode on the embedded task, at equal numbers of updates: eval loss
// after `zopeer train` of 400, 1600 and 6400 updates (16 per step), mean of
// three runs (run ids) each, against updates and against the wall time of
// one `zopeer train` (process start, model load, training and evaluations). A measurement for docs/BENCHMARKS.md, not a
// check: it runs only with ZOPEER_POOL_LEARNING=1 and writes the table and
// chart to ZOPEER_POOL_OUT (default: a temporary directory).
//
//	ZOPEER_POOL_LEARNING=1 ZOPEER_POOL_OUT=docs go test -run TestPoolLearning -v -timeout 30m ./testnet/
func TestPoolLearning(t *testing.T) {
	if os.Getenv("ZOPEER_POOL_LEARNING") != "1" {
		t.Skip("set ZOPEER_POOL_LEARNING=1 to measure learning in pool mode")
	}
	out := os.Getenv("ZOPEER_POOL_OUT")
	if out == "" {
		out = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	re := regexp.MustCompile(`eval loss ([0-9.]+) → ([0-9.]+)`)
	budgets := []int{400, 1600, 6400}
	type mode struct{ k, m int } // pool K (0: full mode), pool choices m (0: uniform)
	modes := []mode{{0, 0}, {256, 0}, {256, 16}, {256, 256}, {1024, 0}, {1024, 16}, {1024, 256}, {4096, 0}}
	const runs = 3
	var base float64
	mean := map[[2]int]float64{}
	spread := map[[2]int][2]float64{} // min, max over the runs
	var pts []Point
	for i, md := range modes {
		k := i // the table's key for the mode
		name := "full"
		if md.k > 0 {
			name = fmt.Sprintf("pool K=%d", md.k)
		}
		if md.m > 0 {
			name += fmt.Sprintf(" pro m=%d", md.m)
		}
		for _, u := range budgets {
			var sum float64
			var took time.Duration
			for r := range runs {
				home := filepath.Join(t.TempDir(), "h")
				args := []string{"train", "--home", home, "--run", fmt.Sprintf("pool-learning-%d", r), "--samples", "16", "--steps", strconv.Itoa(u / 16)}
				if md.k > 0 {
					args = append(args, "--pool", strconv.Itoa(md.k))
				}
				if md.m > 0 {
					args = append(args, "--pool-choices", strconv.Itoa(md.m))
				}
				t0 := time.Now()
				b, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
				took += time.Since(t0)
				if err != nil {
					t.Fatalf("zopeer %v: %v\n%s", args, err, b)
				}
				m := re.FindStringSubmatch(string(b))
				if m == nil {
					t.Fatalf("no eval loss in:\n%s", b)
				}
				base, _ = strconv.ParseFloat(m[1], 64)
				loss, _ := strconv.ParseFloat(m[2], 64)
				sum += loss
				sp := spread[[2]int{k, u}]
				if r == 0 || loss < sp[0] {
					sp[0] = loss
				}
				sp[1] = max(sp[1], loss)
				spread[[2]int{k, u}] = sp
			}
			mean[[2]int{k, u}] = sum / runs
			pts = append(pts, Point{Node: name, Updates: uint64(u), Elapsed: took / runs, EvalLoss: sum / runs})
		}
	}
	var tb strings.Builder
	fmt.Fprintf(&tb, "| updates | full |")
	for _, md := range modes[1:] {
		label := fmt.Sprintf("K = %d", md.k)
		if md.m > 0 {
			label += fmt.Sprintf(" pro m = %d", md.m)
		}
		fmt.Fprintf(&tb, " %s |", label)
	}
	fmt.Fprintf(&tb, "\n|---|---|%s\n", strings.Repeat("---|", len(modes)-1))
	var rg strings.Builder
	for _, u := range budgets {
		fmt.Fprintf(&tb, "| %d |", u)
		fmt.Fprintf(&rg, "| %d |", u)
		for k := range modes {
			fmt.Fprintf(&tb, " %.4f |", mean[[2]int{k, u}])
			fmt.Fprintf(&rg, " %.4f–%.4f |", spread[[2]int{k, u}][0], spread[[2]int{k, u}][1])
		}
		tb.WriteString("\n")
		rg.WriteString("\n")
	}
	t.Logf("base eval loss %.4f; mean eval loss of %d runs:\n%s\nmin–max over the runs:\n%s", base, runs, tb.String(), rg.String())
	if err := os.WriteFile(filepath.Join(out, "pool-learning.md"), []byte(tb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(out, "pool-learning.svg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ch := Chart{Title: fmt.Sprintf("Embedded task: eval loss after N updates, pool mode against full (mean of %d runs)", runs),
		XLabel: "updates", Points: pts, BaseLoss: base}
	if err := ch.WriteSVG(f); err != nil {
		t.Fatal(err)
	}
}
