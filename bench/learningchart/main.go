// Command learningchart reads the evaluation files bench/learning.sh writes
// (JSON lines with impl, method, seed, forwards, eval_loss and a time t),
// averages each (impl, method) over its seeds at every forward-pass count,
// prints a table and the forward passes each series needs to reach the
// PyTorch MeZO reference's final eval loss, and draws the mean curves.
//
//	go run ./bench/learningchart -out learning.svg DIR/*.jsonl
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/zopeer/zopeer/testnet"
)

type eval struct {
	Impl     string  `json:"impl"`
	Method   string  `json:"method"`
	Seed     int     `json:"seed"`
	Forwards uint64  `json:"forwards"`
	Updates  uint64  `json:"updates"`
	EvalLoss float64 `json:"eval_loss"`
	T        float64 `json:"t"`
}

type series struct {
	name  string
	seeds map[int]bool
	at    map[uint64][]float64 // forwards → eval losses of the seeds
	secs  map[uint64][]float64
}

func main() {
	out := flag.String("out", "learning.svg", "SVG chart to write")
	ref := flag.String("ref", "pytorch mezo", "series whose final loss is the target")
	title := flag.String("title", "Jargon File fine-tuning of the English model: mean eval loss over seeds", "chart title")
	x := flag.String("x", "forwards", "x axis: forwards (forward passes on training batches) or updates")
	linear := flag.Bool("linear", false, "linear eval-loss axis fitted to the data (default: logarithmic)")
	var md []uint64
	flag.Func("md", "also print a Markdown table of mean ± std at these x values (comma-separated)", func(v string) error {
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
			if err != nil {
				return err
			}
			md = append(md, n)
		}
		return nil
	})
	flag.Parse()
	if *x != "forwards" && *x != "updates" {
		log.Fatalf("-x %q: want forwards or updates", *x)
	}
	all := map[string]*series{}
	for _, path := range flag.Args() {
		f, err := os.Open(path)
		if err != nil {
			log.Fatal(err)
		}
		var t0 float64
		sc := bufio.NewScanner(f)
		for i := 0; sc.Scan(); i++ {
			var e eval
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				log.Fatalf("%s: %v", path, err)
			}
			if e.Impl == "" {
				e.Impl = "pytorch"
			}
			if i == 0 {
				t0 = e.T
			}
			name := e.Impl + " " + e.Method
			s := all[name]
			if s == nil {
				s = &series{name: name, seeds: map[int]bool{}, at: map[uint64][]float64{}, secs: map[uint64][]float64{}}
				all[name] = s
			}
			if *x == "updates" {
				e.Forwards = e.Updates
			}
			s.seeds[e.Seed] = true
			s.at[e.Forwards] = append(s.at[e.Forwards], e.EvalLoss)
			s.secs[e.Forwards] = append(s.secs[e.Forwards], e.T-t0)
		}
		f.Close()
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	var pts []testnet.Point
	var base float64
	target := math.NaN()
	if r := all[*ref]; r != nil {
		fs := keys(r.at)
		target = mean(r.at[fs[len(fs)-1]])
	}
	fmt.Printf("%-22s %6s  %s: mean eval loss ± std over seeds\n", "series", "seeds", *x)
	for _, n := range names {
		s := all[n]
		label := fmt.Sprintf("%s (%d seeds)", n, len(s.seeds))
		fmt.Printf("%-22s %6d ", n, len(s.seeds))
		reach := "never"
		for _, fw := range keys(s.at) {
			m, sd := mean(s.at[fw]), std(s.at[fw])
			if fw == 0 {
				base = m
			}
			fmt.Printf(" %d:%.3f±%.3f", fw, m, sd)
			if reach == "never" && m <= target {
				reach = fmt.Sprint(fw)
			}
			pts = append(pts, testnet.Point{Node: label, Updates: fw, EvalLoss: m, Elapsed: time.Duration(mean(s.secs[fw]) * float64(time.Second))})
		}
		fmt.Printf("\n%-22s        reaches %s's final %.4f at %s %s\n", "", *ref, target, reach, *x)
	}
	if len(md) > 0 {
		fmt.Printf("\n| series |")
		for _, v := range md {
			fmt.Printf(" %d |", v)
		}
		fmt.Printf("\n|---|%s\n", strings.Repeat("---|", len(md)))
		for _, n := range names {
			s := all[n]
			fmt.Printf("| %s (%d seeds) |", n, len(s.seeds))
			for _, v := range md {
				if ls := s.at[v]; len(ls) > 0 {
					fmt.Printf(" %.3f±%.3f |", mean(ls), std(ls))
				} else {
					fmt.Printf(" – |")
				}
			}
			fmt.Println()
		}
	}
	f, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	xl := "forward passes on training batches"
	if *x == "updates" {
		xl = "updates"
	}
	c := testnet.Chart{Title: *title, XLabel: xl, Points: pts, BaseLoss: base, Linear: *linear}
	if err := c.WriteSVG(f); err != nil {
		log.Fatal(err)
	}
}

func keys(m map[uint64][]float64) []uint64 {
	ks := make([]uint64, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func std(xs []float64) float64 {
	if len(xs) < 2 {
		return 0
	}
	m, s := mean(xs), 0.0
	for _, x := range xs {
		s += (x - m) * (x - m)
	}
	return math.Sqrt(s / float64(len(xs)-1))
}
