package main

// The English model: a byte-level GPT-2 pretrained on the King James Bible
// (Debian's bible-kjv-text, public domain) and a fine-tuning task on
// different English, the Jargon File (Debian's dict-jargon, public
// domain). docs/LEARNING.md describes both and the command that makes them.

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/zopeer/zopeer/model/tokenizer"
)

// kjvVerses reads the output of `bible gen1:1-rev22:21` (package
// bible-kjv): chapter headings ("Genesis 1"), then verses "  N text" whose
// lines wrap at the terminal width. It returns one line per verse, without
// its number, in the order of the book.
func kjvVerses(r io.Reader) ([]string, error) {
	verseStart := regexp.MustCompile(`^\s+\d+ (.*)$`)
	var verses []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch m := verseStart.FindStringSubmatch(line); {
		case m != nil:
			verses = append(verses, strings.TrimSpace(m[1]))
		case strings.TrimSpace(line) == "":
			// between chapters
		case !strings.HasPrefix(line, " ") && len(verses) > 0 && isHeading(line):
			// a chapter heading
		case len(verses) > 0:
			verses[len(verses)-1] += " " + strings.TrimSpace(line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("gen: reading the Bible text: %w", err)
	}
	if len(verses) < 30000 {
		return nil, fmt.Errorf("gen: %d verses in the Bible text; want the whole book (bible gen1:1-rev22:21)", len(verses))
	}
	return verses, nil
}

var heading = regexp.MustCompile(`^(\d )?[A-Z][A-Za-z ]+ \d+$`)

func isHeading(line string) bool { return heading.MatchString(line) }

// jargonEntries reads the Jargon File as dict-jargon ships it:
// jargon.index lists "headword TAB offset TAB length" (dictd's base64
// numbers) into the gzip-compatible jargon.dict.dz beside it. Each entry,
// in the index's order, once per offset, becomes "headword: body" with its
// whitespace collapsed; the dictd header entries (00-database-…) are
// dropped.
func jargonEntries(dictPath string) ([]string, error) {
	f, err := os.Open(dictPath)
	if err != nil {
		return nil, fmt.Errorf("gen: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("gen: %s: %w", dictPath, err)
	}
	dict, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("gen: %s: %w", dictPath, err)
	}
	indexPath := strings.TrimSuffix(dictPath, ".dict.dz") + ".index"
	index, err := os.ReadFile(indexPath)
	if err != nil {
		return nil, fmt.Errorf("gen: %w", err)
	}
	var entries []string
	seen := map[int]bool{}
	for _, line := range strings.Split(string(index), "\n") {
		fs := strings.Split(line, "\t")
		if len(fs) != 3 || strings.HasPrefix(fs[0], "00-database") {
			continue
		}
		off, okOff := dictdNumber(fs[1])
		n, okN := dictdNumber(fs[2])
		if !okOff || !okN || off+n > len(dict) {
			return nil, fmt.Errorf("gen: %s: bad index line %q", indexPath, line)
		}
		if seen[off] {
			continue
		}
		seen[off] = true
		head, body, _ := strings.Cut(string(dict[off:off+n]), "\n")
		// An entry without a pronunciation starts with an empty one, "//".
		body = strings.TrimPrefix(strings.Join(strings.Fields(body), " "), "// ")
		if body = strings.TrimPrefix(body, "//, "); body != "" {
			entries = append(entries, strings.TrimSpace(head)+": "+body)
		}
	}
	if len(entries) < 1000 {
		return nil, fmt.Errorf("gen: %s: only %d Jargon File entries", dictPath, len(entries))
	}
	return entries, nil
}

// dictdNumber decodes dictd's base64 numerals (digits A-Z a-z 0-9 + /,
// most significant first).
func dictdNumber(s string) (int, bool) {
	const digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	v := 0
	for _, c := range s {
		d := strings.IndexRune(digits, c)
		if d < 0 || v > 1<<40 {
			return 0, false
		}
		v = v*64 + d
	}
	return v, s != ""
}

// cutAt shortens s to at most n bytes, at the last space before the limit.
func cutAt(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if i := strings.LastIndexByte(s[:n], ' '); i > n/2 {
		return s[:i]
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// englishCorpus is the Bible's text as bytes: verses in order, one per
// line. The last heldOutBytes are held out from pretraining.
type englishCorpus struct {
	train, heldOut []byte
	r              *rand.Rand
	ctx            int
}

const heldOutBytes = 1 << 17

func newEnglishCorpus(verses []string, seed uint64, ctx int) *englishCorpus {
	all := []byte(strings.Join(verses, "\n") + "\n")
	cut := len(all) - heldOutBytes
	return &englishCorpus{train: all[:cut], heldOut: all[cut:], r: rand.New(rand.NewPCG(seed, 0xe17)), ctx: ctx}
}

// window returns ctx byte ids starting at a uniformly drawn offset of src.
func window(r *rand.Rand, src []byte, ctx int) []int {
	off := r.IntN(len(src) - ctx + 1)
	ids := make([]int, ctx)
	for i, c := range src[off : off+ctx] {
		ids[i] = int(c)
	}
	return ids
}

func (c *englishCorpus) batch(n int) ([][]int, error) {
	out := make([][]int, n)
	for i := range out {
		out[i] = window(c.r, c.train, c.ctx)
	}
	return out, nil
}

// heldOutBatch draws n windows of the held-out tail with its own generator.
func (c *englishCorpus) heldOutBatch(seed uint64, n int) [][]int {
	r := rand.New(rand.NewPCG(seed, 0x4e1d))
	out := make([][]int, n)
	for i := range out {
		out[i] = window(r, c.heldOut, c.ctx)
	}
	return out
}

// Fine-tuning task sizes: entries of the Jargon File, each cut to at most
// taskChars bytes; every taskEvalEvery-th entry (in the file's order) is
// held out.
const (
	taskChars     = 256
	taskEvalEvery = 5
	taskTrainMax  = 1200
	taskEvalMax   = 300
)

// writeEnglishTask writes train.jsonl and eval.jsonl as {"text"} records.
func writeEnglishTask(dir, jargonPath string) error {
	entries, err := jargonEntries(jargonPath)
	if err != nil {
		return err
	}
	var train, eval []string
	for i, e := range entries {
		e = cutAt(e, taskChars)
		if i%taskEvalEvery == taskEvalEvery-1 {
			if len(eval) < taskEvalMax {
				eval = append(eval, e)
			}
		} else if len(train) < taskTrainMax {
			train = append(train, e)
		}
	}
	for name, texts := range map[string][]string{"train.jsonl": train, "eval.jsonl": eval} {
		var sb strings.Builder
		for _, t := range texts {
			b, err := json.Marshal(map[string]string{"text": t})
			if err != nil {
				return fmt.Errorf("gen: %w", err)
			}
			sb.Write(b)
			sb.WriteByte('\n')
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(sb.String()), 0o644); err != nil {
			return fmt.Errorf("gen: %w", err)
		}
	}
	return nil
}

// runEnglish makes the English model: byte-level tokenizer (no merges),
// task files, pretraining on the Bible, export and check.
func runEnglish(o options) error {
	f, err := os.Open(o.text)
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	verses, err := kjvVerses(f)
	f.Close()
	if err != nil {
		return err
	}
	b, vocab, err := tokenizerJSON(nil)
	if err != nil {
		return fmt.Errorf("gen: tokenizer.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(o.out, "tokenizer.json"), b, 0o644); err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	tok, err := tokenizer.Parse(b)
	if err != nil {
		return fmt.Errorf("gen: reading back tokenizer.json: %w", err)
	}
	// Byte-level with no merges: a token id is its byte. Check it on a verse.
	ids, err := tok.Encode(verses[0], false)
	if err != nil || len(ids) != len(verses[0]) || ids[0] != int(verses[0][0]) {
		return fmt.Errorf("gen: the byte-level tokenizer does not map bytes to their values (%v)", err)
	}
	o.arch.Vocab = vocab
	if o.task != "" {
		if err := writeEnglishTask(o.out, o.task); err != nil {
			return err
		}
	}
	c := newEnglishCorpus(verses, o.seed, o.arch.MaxPos)
	w := initWeights(o.arch, o.seed)
	heldOut := c.heldOutBatch(o.seed+1, o.checkDocs)
	if err := pretrainOn(o, w, c, heldOut); err != nil {
		return err
	}
	if err := writeModel(o.out, w); err != nil {
		return err
	}
	return checkExport(o.out, w, heldOut)
}
