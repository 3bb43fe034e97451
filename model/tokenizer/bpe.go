package tokenizer

import (
	"fmt"
	"unicode/utf8"
)

type merge struct{ rank, id int }

// pairKey packs a pair of ids into one map key, cheaper to hash than [2]int.
func pairKey(a, b int) uint64 { return uint64(a)<<32 | uint64(uint32(b)) }

// bpe is Hugging Face's BPE model without dropout or subword affixes.
type bpe struct {
	vocab        map[string]int
	merges       map[uint64]merge // by pairKey
	unk          int              // -1: none
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
}

// symbol is one node of the doubly linked list a word is merged on.
type symbol struct {
	id         int
	prev, next int // -1 at the ends
	gone       bool
}

// candidate is a possible merge of the symbol at pos with its successor.
type candidate struct {
	pos int
	merge
}

// candidates is a min-heap that pops the lowest rank first and, on ties,
// the leftmost pair, which is the order of Hugging Face's Word::merge_all.
// It is written out rather than using container/heap, whose interface
// boxing doubled the cost of merging.
type candidates []candidate

func (c candidates) less(i, j int) bool {
	if c[i].rank != c[j].rank {
		return c[i].rank < c[j].rank
	}
	return c[i].pos < c[j].pos
}

func (c *candidates) push(x candidate) {
	*c = append(*c, x)
	h := *c
	for i := len(h) - 1; i > 0; {
		parent := (i - 1) / 2
		if !h.less(i, parent) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func (c *candidates) pop() candidate {
	h := *c
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	for i := 0; ; {
		small, l, r := i, 2*i+1, 2*i+2
		if l < len(h) && h.less(l, small) {
			small = l
		}
		if r < len(h) && h.less(r, small) {
			small = r
		}
		if small == i {
			break
		}
		h[i], h[small] = h[small], h[i]
		i = small
	}
	*c = h
	return top
}

// encodeWord appends the ids of one pre-tokenized word to ids.
func (m *bpe) encodeWord(ids []int, word string) []int {
	if word == "" {
		return ids
	}
	if m.ignoreMerges {
		if id, ok := m.vocab[word]; ok {
			return append(ids, id)
		}
	}
	syms := m.initialSymbols(word)
	m.mergeAll(syms)
	for _, s := range syms {
		if !s.gone {
			ids = append(ids, s.id)
		}
	}
	return ids
}

// initialSymbols maps each character to its token, falling back to byte
// tokens <0xXX> and then to the unknown token, which consecutive unknown
// characters share when fuse_unk is set. A character with none of these is
// dropped, as Hugging Face drops it.
func (m *bpe) initialSymbols(word string) []symbol {
	syms := make([]symbol, 0, utf8.RuneCountInString(word))
	add := func(id int) {
		syms = append(syms, symbol{id: id, prev: len(syms) - 1, next: len(syms) + 1})
	}
	pendingUnk := false
	for i, r := range word {
		ch := word[i : i+utf8.RuneLen(r)]
		if id, ok := m.vocab[ch]; ok {
			pendingUnk = false
			add(id)
			continue
		}
		if m.byteFallback {
			if bytes, ok := m.byteTokens(ch); ok {
				pendingUnk = false
				for _, id := range bytes {
					add(id)
				}
				continue
			}
		}
		if m.unk < 0 {
			continue
		}
		if !(m.fuseUnk && pendingUnk) {
			add(m.unk)
		}
		pendingUnk = true
	}
	if len(syms) > 0 {
		syms[len(syms)-1].next = -1
	}
	return syms
}

func (m *bpe) byteTokens(ch string) ([]int, bool) {
	ids := make([]int, 0, len(ch))
	for i := 0; i < len(ch); i++ {
		id, ok := m.vocab[fmt.Sprintf("<0x%02X>", ch[i])]
		if !ok {
			return nil, false
		}
		ids = append(ids, id)
	}
	return ids, true
}

func (m *bpe) mergeAll(syms []symbol) {
	queue := make(candidates, 0, len(syms))
	for i := 0; i+1 < len(syms); i++ {
		if mg, ok := m.merges[pairKey(syms[i].id, syms[i+1].id)]; ok {
			queue.push(candidate{i, mg})
		}
	}
	for len(queue) > 0 {
		top := queue.pop()
		cur := &syms[top.pos]
		if cur.gone || cur.next < 0 {
			continue
		}
		right := syms[cur.next]
		// Skip entries made stale by an earlier merge on either side.
		if mg, ok := m.merges[pairKey(cur.id, right.id)]; !ok || mg.id != top.id {
			continue
		}
		cur.id = top.id
		syms[cur.next].gone = true
		cur.next = right.next
		if right.next >= 0 {
			syms[right.next].prev = top.pos
		}
		if cur.prev >= 0 {
			if mg, ok := m.merges[pairKey(syms[cur.prev].id, cur.id)]; ok {
				queue.push(candidate{cur.prev, mg})
			}
		}
		if cur.next >= 0 {
			if mg, ok := m.merges[pairKey(cur.id, syms[cur.next].id)]; ok {
				queue.push(candidate{top.pos, mg})
			}
		}
	}
}
