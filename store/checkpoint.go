package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/zopeer/zopeer/zo"
)

// Checkpoint files live in <dir>/checkpoints. A file is self-contained, so it
// can be shipped to a joining peer as is:
//
//	magic[8] | u32le header length | header (JSON) | Q of every tensor (int32 LE) | SHA-256 of all before
//
// Its metadata (CheckpointInfo) is the authority on which checkpoints exist:
// the file is fsynced and renamed into place before the metadata is written,
// and the metadata is deleted before the file, so a crash leaves at worst an
// orphan file, which Open removes.
const ckptDir = "checkpoints"

var ckptMagic = [8]byte{'Z', 'O', 'C', 'K', 'P', 'T', 0, FormatVersion}

// maxHeader bounds a checkpoint header, which is mostly the included set.
const maxHeader = 256 << 20

// CheckpointInfo is what the store records about a checkpoint.
type CheckpointInfo struct {
	ID       uint64    `json:"id"`
	File     string    `json:"file"`
	Size     int64     `json:"size"`
	Sum      [32]byte  `json:"sum"`  // SHA-256 of the file before its trailer
	Hash     [32]byte  `json:"hash"` // weights hash (zo.Weights.Hash)
	Updates  uint64    `json:"updates"`
	Included Summary   `json:"included"` // exactly the updates the weights include
	Created  time.Time `json:"created"`
}

type ckptHeader struct {
	FormatVersion int          `json:"format_version"`
	Run           string       `json:"run"`
	BaseDigest    [32]byte     `json:"base_digest"`
	ID            uint64       `json:"id"`
	Hash          [32]byte     `json:"hash"`
	Included      Summary      `json:"included"`
	Tensors       []ckptTensor `json:"tensors"`
}

type ckptTensor struct {
	Name      string `json:"name"`
	Shape     []int  `json:"shape"`
	Offset    uint64 `json:"offset"`
	Exp       int    `json:"exp"`
	Trainable bool   `json:"trainable"`
	Len       int    `json:"len"`
}

func (c ckptTensor) matches(t *zo.Tensor) bool {
	return c.Name == t.Name && slices.Equal(c.Shape, t.Shape) && c.Offset == t.Offset &&
		c.Exp == t.Exp && c.Trainable == t.Trainable && c.Len == t.Len()
}

func ckptKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{pfxCkpt}, id)
}

var nativeLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// WriteCheckpoint persists w, whose canonical weights are the base weights
// plus exactly the updates in included, so that Replay need only apply the
// rest of the log. Every update in included must already be logged. w must
// not change during the call. Older checkpoints beyond the configured number
// are deleted once the new one is durable.
func (s *Store) WriteCheckpoint(ctx context.Context, w *zo.Weights, included Summary) (CheckpointInfo, error) {
	if !s.g.enter() {
		return CheckpointInfo{}, ErrClosed
	}
	defer s.g.exit()
	s.mu.Lock()
	if !included.SubsetOf(s.sum) {
		s.mu.Unlock()
		return CheckpointInfo{}, ErrNotLogged
	}
	id := s.nextCk
	s.nextCk++
	s.mu.Unlock()

	// The checkpoint claims its updates are logged; make that true across
	// power loss before the checkpoint can outlive them.
	if err := s.Sync(); err != nil {
		return CheckpointInfo{}, err
	}
	h := ckptHeader{
		FormatVersion: FormatVersion, Run: s.man.Run, BaseDigest: s.man.BaseDigest,
		ID: id, Hash: w.Hash(), Included: included.Clone(),
	}
	var dataLen int64
	for _, t := range w.Tensors {
		h.Tensors = append(h.Tensors, ckptTensor{Name: t.Name, Shape: t.Shape, Offset: t.Offset, Exp: t.Exp, Trainable: t.Trainable, Len: t.Len()})
		dataLen += 4 * int64(t.Len())
	}
	hb, err := json.Marshal(h)
	if err != nil {
		return CheckpointInfo{}, fmt.Errorf("store: checkpoint: %w", err)
	}
	info := CheckpointInfo{
		ID: id, File: fmt.Sprintf("ckpt-%016x.zck", id), Size: 12 + int64(len(hb)) + dataLen + 32,
		Hash: h.Hash, Updates: included.Count(), Included: h.Included, Created: time.Now().UTC(),
	}
	if s.dir != "" {
		if err := checkFree(s.dir, uint64(info.Size)+s.opts.minFree); err != nil {
			return CheckpointInfo{}, err
		}
	}
	if info.Sum, err = s.writeCkptFile(ctx, info.File, hb, w); err != nil {
		return CheckpointInfo{}, err
	}
	meta, err := json.Marshal(info)
	if err != nil {
		return CheckpointInfo{}, fmt.Errorf("store: checkpoint: %w", err)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(ckptKey(id), meta) }); err != nil {
		s.cks.remove(info.File)
		return CheckpointInfo{}, wrap("checkpoint", err)
	}
	if err := s.Sync(); err != nil {
		return CheckpointInfo{}, err
	}
	s.log.Info("checkpoint written", "id", id, "updates", info.Updates, "bytes", info.Size)
	return info, s.prune()
}

func (s *Store) writeCkptFile(ctx context.Context, name string, hb []byte, w *zo.Weights) ([32]byte, error) {
	var sum [32]byte
	f, err := s.cks.create(name)
	if err != nil {
		return sum, s.ckptIOError(err)
	}
	hs := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, hs), 1<<20)
	bw.Write(ckptMagic[:])
	bw.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(hb))))
	bw.Write(hb)
	for _, t := range w.Tensors {
		if err := ctx.Err(); err != nil {
			f.abort()
			return sum, fmt.Errorf("store: checkpoint: %w", err)
		}
		bw.Write(zo.LittleEndianInt32s(t.Q))
	}
	// bufio keeps the first write error and returns it from every later call.
	if err := bw.Flush(); err != nil {
		f.abort()
		return sum, s.ckptIOError(err)
	}
	hs.Sum(sum[:0])
	if _, err := f.Write(sum[:]); err != nil {
		f.abort()
		return sum, s.ckptIOError(err)
	}
	if err := f.commit(); err != nil {
		return sum, s.ckptIOError(err)
	}
	return sum, nil
}

func (s *Store) ckptIOError(err error) error {
	if s.dir != "" {
		return dirError(s.dir, fmt.Errorf("checkpoint: %w", err))
	}
	return fmt.Errorf("store: checkpoint: %w", err)
}

// Checkpoints lists the recorded checkpoints, oldest first.
func (s *Store) Checkpoints() ([]CheckpointInfo, error) {
	if !s.g.enter() {
		return nil, ErrClosed
	}
	defer s.g.exit()
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	return listCkpts(txn)
}

func listCkpts(txn *badger.Txn) ([]CheckpointInfo, error) {
	var out []CheckpointInfo
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxCkpt}, PrefetchValues: true})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		var c CheckpointInfo
		if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &c) }); err != nil {
			return nil, fmt.Errorf("%w: checkpoint metadata: %v", ErrCorrupt, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// prune deletes all but the newest keepCkpts checkpoints and the pinned
// one, metadata first.
func (s *Store) prune() error {
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	cks, err := s.Checkpoints()
	if err != nil || len(cks) <= s.opts.keepCkpts {
		return err
	}
	old := slices.DeleteFunc(cks[:len(cks)-s.opts.keepCkpts], func(c CheckpointInfo) bool { return c.ID == s.pinned })
	if len(old) == 0 {
		return nil
	}
	err = s.db.Update(func(txn *badger.Txn) error {
		for _, c := range old {
			if err := txn.Delete(ckptKey(c.ID)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return wrap("prune checkpoints", err)
	}
	for _, c := range old {
		if err := s.cks.remove(c.File); err != nil {
			s.log.Warn("removing old checkpoint", "file", c.File, "err", err)
		}
	}
	return nil
}

// Pin keeps checkpoint c through pruning, beyond the configured number, until
// another is pinned: a donor pins the checkpoint it serves as a snapshot so
// that the checkpoints it writes as it trains on do not delete it under a
// joiner's fetch. The previously pinned one is pruned now if it is too old.
// It fails with ErrNoCheckpoint if c is no longer recorded.
func (s *Store) Pin(c CheckpointInfo) error {
	if !s.g.enter() {
		return ErrClosed
	}
	defer s.g.exit()
	if err := s.setPin(c); err != nil {
		return err
	}
	return s.prune()
}

func (s *Store) setPin(c CheckpointInfo) error {
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	cks, err := s.Checkpoints()
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(cks, func(k CheckpointInfo) bool { return k.ID == c.ID && k.File == c.File }) {
		return fmt.Errorf("%w: checkpoint %d is not recorded", ErrNoCheckpoint, c.ID)
	}
	s.pinned = c.ID
	return nil
}

// removeOrphans deletes checkpoint files that no metadata refers to: temp
// files and checkpoints whose writer died before recording them.
func (s *Store) removeOrphans() error {
	cks, err := s.Checkpoints()
	if err != nil {
		return err
	}
	names, err := s.cks.list()
	if err != nil {
		return fmt.Errorf("store: list checkpoints: %w", err)
	}
	for _, n := range names {
		if !slices.ContainsFunc(cks, func(c CheckpointInfo) bool { return c.File == n }) {
			s.log.Info("removing orphan checkpoint file", "file", n)
			if err := s.cks.remove(n); err != nil {
				return fmt.Errorf("store: remove orphan %s: %w", n, err)
			}
		}
	}
	return nil
}

// readCkpt checks checkpoint c against its metadata and the manifest. With
// w == nil it only verifies the file; otherwise it also copies the weights
// into w, which it first checks has the checkpoint's layout. An error after
// the layout check leaves w's weights undefined; that is why Replay verifies
// a file before loading it.
func (s *Store) readCkpt(ctx context.Context, c CheckpointInfo, w *zo.Weights) error {
	f, size, err := s.cks.open(c.File)
	if err != nil {
		return fmt.Errorf("%w: checkpoint %d: %v", ErrCorrupt, c.ID, err)
	}
	defer f.Close()
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: checkpoint %d: %s", ErrCorrupt, c.ID, fmt.Sprintf(format, a...))
	}
	if size != c.Size || size < 12+32 {
		return bad("file has %d bytes, expected %d", size, c.Size)
	}
	hs := sha256.New()
	body := &io.LimitedReader{R: f, N: size - 32}
	r := io.TeeReader(bufio.NewReaderSize(body, 1<<20), hs)
	var pre [12]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return bad("%v", err)
	}
	if !bytes.Equal(pre[:8], ckptMagic[:]) {
		return bad("bad magic %q", pre[:8])
	}
	hl := int64(binary.LittleEndian.Uint32(pre[8:]))
	if hl > maxHeader || 12+hl+32 > size {
		return bad("header length %d", hl)
	}
	hb := make([]byte, hl)
	if _, err := io.ReadFull(r, hb); err != nil {
		return bad("%v", err)
	}
	var h ckptHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return bad("header: %v", err)
	}
	switch {
	case h.FormatVersion != FormatVersion:
		return bad("format %d", h.FormatVersion)
	case h.Run != s.man.Run || h.BaseDigest != s.man.BaseDigest:
		return bad("of run %q", h.Run)
	case h.ID != c.ID || h.Hash != c.Hash || !h.Included.Equal(c.Included):
		return bad("header disagrees with its metadata")
	}
	var dataLen int64
	for _, t := range h.Tensors {
		dataLen += 4 * int64(t.Len)
	}
	if 12+hl+dataLen+32 != size {
		return bad("sizes do not add up")
	}
	if w != nil {
		if len(w.Tensors) != len(h.Tensors) {
			return fmt.Errorf("%w: checkpoint has %d tensors, weights %d", ErrBadWeights, len(h.Tensors), len(w.Tensors))
		}
		for i, t := range h.Tensors {
			if !t.matches(w.Tensors[i]) {
				return fmt.Errorf("%w: tensor %d (%q)", ErrBadWeights, i, t.Name)
			}
		}
	}
	for i, t := range h.Tensors {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("store: checkpoint %d: %w", c.ID, err)
		}
		if w == nil {
			if _, err := io.CopyN(io.Discard, r, 4*int64(t.Len)); err != nil {
				return bad("%v", err)
			}
			continue
		}
		q := w.Tensors[i].Q
		buf := zo.LittleEndianInt32s(q) // q's own memory on little-endian machines
		if _, err := io.ReadFull(r, buf); err != nil {
			return bad("%v", err)
		}
		if !nativeLittleEndian {
			for j := range q {
				q[j] = int32(binary.LittleEndian.Uint32(buf[4*j:]))
			}
		}
	}
	return checkTrailer(f, hs, c, bad)
}

func checkTrailer(f io.Reader, hs hash.Hash, c CheckpointInfo, bad func(string, ...any) error) error {
	var got, want [32]byte
	hs.Sum(got[:0])
	if _, err := io.ReadFull(f, want[:]); err != nil {
		return bad("trailer: %v", err)
	}
	if got != want || got != c.Sum {
		return bad("checksum mismatch")
	}
	return nil
}

// blobStore holds checkpoint files: a directory, or memory for OpenMemory.
type blobStore interface {
	create(name string) (blobWriter, error)
	open(name string) (io.ReadCloser, int64, error)
	remove(name string) error
	list() ([]string, error)
}

// blobWriter is a blob being written; it appears under its name only on commit.
type blobWriter interface {
	io.Writer
	commit() error
	abort()
}

var errNoBlob = errors.New("no such checkpoint file")
