package main

import (
	"math/rand/v2"
	"strings"
)

// The synthetic language: 48 things in four categories, a handful of
// sentence templates about them, and a labelling format
//
//	item: <thing>
//	class: <label>
//
// whose label comes in four styles. A document that starts with labelled
// items keeps one style throughout, so the model learns to read the style
// from context; at the start of a document it can only guess from the
// styles' frequencies. The fine-tuning task asks for the rarest style, the
// category name, on things held out from fine-tuning: a shift of the
// model's prior that ZO can pick up, on knowledge pretraining supplied.

type category struct {
	name  string    // style 0 (the fine-tuning target)
	other [3]string // styles 1-3: a code letter, a number, a synonym
	items []string
}

var categories = []category{
	{"animal", [3]string{"A", "1", "beast"}, []string{"cat", "dog", "fox", "owl", "bear", "wolf", "hare", "deer", "frog", "duck", "goat", "lion"}},
	{"fruit", [3]string{"B", "2", "snack"}, []string{"apple", "pear", "plum", "grape", "lemon", "mango", "peach", "cherry", "melon", "lime", "fig", "kiwi"}},
	{"tool", [3]string{"C", "3", "gear"}, []string{"hammer", "saw", "drill", "wrench", "chisel", "axe", "spade", "rake", "shovel", "ladder", "pliers", "broom"}},
	{"vehicle", [3]string{"D", "4", "ride"}, []string{"car", "bus", "train", "boat", "truck", "bike", "van", "tram", "ship", "plane", "cart", "sled"}},
}

// heldOut is how many things per category (the last ones) appear in the
// fine-tuning eval set only; pretraining sees every thing.
const heldOut = 4

var adjectives = []string{"red", "big", "small", "old", "young", "green", "brown", "tiny", "heavy", "quick"}

// styleWeights are the label styles' frequencies in pretraining: the
// category name is the rarest, so the base model seldom answers with it.
var styleWeights = [4]float64{0.1, 0.3, 0.3, 0.3}

type thing struct {
	cat  int
	name string
}

func allThings() []thing {
	var ts []thing
	for c, cat := range categories {
		for _, it := range cat.items {
			ts = append(ts, thing{c, it})
		}
	}
	return ts
}

func (t thing) label(style int) string {
	if style == 0 {
		return categories[t.cat].name
	}
	return categories[t.cat].other[style-1]
}

func article(w string) string {
	if strings.ContainsRune("aeiou", rune(w[0])) {
		return "an " + w
	}
	return "a " + w
}

// generator draws text from the language; its only state is its RNG, so a
// seed fixes everything it produces.
type generator struct {
	r      *rand.Rand
	things []thing
}

func newGenerator(seed uint64) *generator {
	return &generator{r: rand.New(rand.NewPCG(seed, 0x5eed)), things: allThings()}
}

func (g *generator) thing() thing { return g.things[g.r.IntN(len(g.things))] }

func (g *generator) inCat(c int) string {
	items := categories[c].items
	return items[g.r.IntN(len(items))]
}

func (g *generator) adj() string { return adjectives[g.r.IntN(len(adjectives))] }

// itemText is a thing as a labelling line names it, with an adjective half
// of the time.
func (g *generator) itemText(t thing) string {
	if g.r.IntN(2) == 0 {
		return g.adj() + " " + t.name
	}
	return t.name
}

func (g *generator) style() int {
	u := g.r.Float64()
	for s, w := range styleWeights {
		if u < w {
			return s
		}
		u -= w
	}
	return len(styleWeights) - 1
}

// sentence is one line of plain text.
func (g *generator) sentence() string {
	t, u := g.thing(), g.thing()
	cn, un := categories[t.cat].name, categories[u.cat].name
	switch g.r.IntN(9) {
	case 0:
		return "the " + t.name + " is " + article(cn) + " ."
	case 1:
		return "i saw " + article(g.adj()+" "+t.name) + " near the " + u.name + " ."
	case 2:
		return "every " + t.name + " is " + article(cn) + " , and every " + u.name + " is " + article(un) + " ."
	case 3:
		return "q: what is " + article(t.name) + " ? a: " + article(cn) + " ."
	case 4:
		return "the " + g.inCat(0) + " ate the " + g.inCat(1) + " ."
	case 5:
		return "the " + g.inCat(0) + " rode the " + g.adj() + " " + g.inCat(3) + " ."
	case 6:
		return "she fixed the " + g.inCat(3) + " with the " + g.inCat(2) + " ."
	case 7:
		rel := "different"
		if t.cat == u.cat {
			rel = "alike"
		}
		return "the " + t.name + " and the " + u.name + " are " + rel + " ."
	default:
		return "he put the " + g.inCat(1) + " in the " + g.inCat(3) + " next to the " + g.inCat(2) + " ."
	}
}

func (g *generator) labelled(t thing, style int) string {
	return "item: " + g.itemText(t) + "\nclass: " + t.label(style)
}

// document returns lines of one document; fits reports whether a candidate
// text still fits the context. Half the documents open with a labelled
// item, the position the fine-tuning prompt is in.
func (g *generator) document(fits func(string) bool) string {
	style := g.style()
	qaFirst := g.r.IntN(2) == 0
	pQA := 0.3
	if qaFirst {
		pQA = 0.7
	}
	var lines []string
	for i := 0; ; i++ {
		var line string
		if (i == 0 && qaFirst) || (i > 0 && g.r.Float64() < pQA) {
			line = g.labelled(g.thing(), style)
		} else {
			line = g.sentence()
		}
		cand := strings.Join(append(lines, line), "\n")
		if !fits(cand) {
			break
		}
		lines = append(lines, line)
		if g.r.IntN(12) == 0 {
			break // some short documents, so every length is seen
		}
	}
	return strings.Join(lines, "\n")
}

// pair is one prompt/completion record.
type pair struct {
	Prompt     string `json:"prompt"`
	Completion string `json:"completion"`
}

// taskPairs lists the fine-tuning records: every thing with and without
// each adjective, labelled with its category name. The first
// len(items)-heldOut things of each category go to train, the rest to eval.
func taskPairs() (train, eval []pair) {
	for _, cat := range categories {
		for i, it := range cat.items {
			names := []string{it}
			for _, a := range adjectives {
				names = append(names, a+" "+it)
			}
			for _, n := range names {
				p := pair{"item: " + n + "\nclass:", " " + cat.name}
				if i < len(cat.items)-heldOut {
					train = append(train, p)
				} else {
					eval = append(eval, p)
				}
			}
		}
	}
	return train, eval
}
