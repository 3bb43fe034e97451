package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/y"
	"google.golang.org/protobuf/proto"
)

// Badger trusts its files: a table (.sst) cut short makes it panic in one of
// its own goroutines (out of reach of recover), and a MANIFEST that is
// missing or lost its tail makes it delete every table the MANIFEST no longer
// names, so the store opens empty without a word. checkDB looks at the files
// before Badger does and refuses, naming the file, what Badger would mishandle.
// docs/STORE.md lists each case and what zopeer does.

// vlogHeader is the size of an empty value-log file (key id and IV).
const vlogHeader = 20

// dbFiles is what a store directory holds, as seen before Badger opens it.
type dbFiles struct {
	manifest    bool
	tables      map[uint64]string // table id → path
	vlogBytes   int64             // value-log bytes beyond the headers
	checkpoints int
}

func scanDB(dir string) (dbFiles, error) {
	f := dbFiles{tables: map[uint64]string{}}
	dbDir := filepath.Join(dir, "db")
	es, err := os.ReadDir(dbDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return f, fmt.Errorf("store: %w", err)
	}
	for _, e := range es {
		name := e.Name()
		switch {
		case name == badger.ManifestFilename:
			f.manifest = true
		case strings.HasSuffix(name, ".sst"):
			id, err := strconv.ParseUint(strings.TrimSuffix(name, ".sst"), 10, 64)
			if err == nil {
				f.tables[id] = filepath.Join(dbDir, name)
			}
		case strings.HasSuffix(name, ".vlog"):
			if fi, err := e.Info(); err == nil && fi.Size() > vlogHeader {
				f.vlogBytes += fi.Size() - vlogHeader
			}
		}
	}
	ck, err := os.ReadDir(filepath.Join(dir, ckptDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return f, fmt.Errorf("store: %w", err)
	}
	for _, e := range ck {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			f.checkpoints++
		}
	}
	return f, nil
}

// holdsData says whether the directory has anything a store opening empty
// would silently lose.
func (f dbFiles) holdsData() bool {
	return len(f.tables) > 0 || f.vlogBytes > 0 || f.checkpoints > 0
}

func (f dbFiles) describe() string {
	return fmt.Sprintf("%d table files, %d value-log bytes, %d checkpoint files", len(f.tables), f.vlogBytes, f.checkpoints)
}

// checkDB refuses a store directory Badger would open wrongly: a table file
// whose footer does not hold (Badger panics), a MANIFEST missing next to data
// or damaged so that it no longer names tables that exist (Badger would
// delete them and open empty). A MANIFEST with a damaged tail that still
// names every table is left for Badger to truncate, with a WARN.
func checkDB(dir string, bo badger.Options, log *slog.Logger) (dbFiles, error) {
	f, err := scanDB(dir)
	if err != nil {
		return f, err
	}
	tableErr := func(path string, err error) error {
		return fmt.Errorf("%w: table %s: %v; the store cannot be opened: restore %s from a backup, "+
			"or move it aside and restart to fetch the run's updates from peers again", ErrCorrupt, path, err, dir)
	}
	mpath := filepath.Join(dir, "db", badger.ManifestFilename)
	if !f.manifest {
		for _, path := range f.tables {
			if err := checkTable(path); err != nil {
				return f, tableErr(path, err)
			}
		}
		if f.holdsData() {
			return f, fmt.Errorf("%w: %s is missing next to %s: Badger would open an empty log and discard them; "+
				"restore the store from a backup, or move %s aside and restart to fetch the run's updates from peers again",
				ErrCorrupt, mpath, f.describe(), dir)
		}
		return f, nil
	}
	fp, err := os.Open(mpath)
	if err != nil {
		return f, fmt.Errorf("store: %w", err)
	}
	defer fp.Close()
	fi, err := fp.Stat()
	if err != nil {
		return f, fmt.Errorf("store: %w", err)
	}
	m, valid, err := badger.ReplayManifestFile(fp, bo.ExternalMagicVersion, bo)
	if err != nil {
		return f, fmt.Errorf("%w: %s is damaged (%v) next to %s; restore the store from a backup, "+
			"or move %s aside and restart to fetch the run's updates from peers again", ErrCorrupt, mpath, err, f.describe(), dir)
	}
	// A table the MANIFEST names must be whole (Badger panics on a cut one).
	// One it does not name is a leftover Badger deletes: of a kill while it
	// wrote the table (then the table is cut short too, and its updates are
	// still in the write-ahead log), or of a MANIFEST that lost records
	// (then the table is whole, and deleting it loses data).
	var unnamed []string
	for id, path := range f.tables {
		err := checkTable(path)
		if _, ok := m.Tables[id]; ok {
			if err != nil {
				return f, tableErr(path, err)
			}
		} else if err == nil {
			unnamed = append(unnamed, filepath.Base(path))
		}
	}
	switch {
	case valid < fi.Size() && len(unnamed) > 0, len(m.Tables) == 0 && len(unnamed) > 0:
		return f, fmt.Errorf("%w: %s lost %d of its %d bytes and no longer names table files %v: Badger would delete them; "+
			"restore the store from a backup, or move %s aside and restart to fetch the run's updates from peers again",
			ErrCorrupt, mpath, fi.Size()-valid, fi.Size(), unnamed, dir)
	case valid < fi.Size():
		log.Warn("store: the Badger MANIFEST ends in a partial record (a crash while it was written?); Badger truncates it: every table file is still named, nothing is lost",
			"file", mpath, "size", fi.Size(), "valid", valid)
	}
	return f, nil
}

// checkTable checks a table file's footer the way Badger reads it (checksum
// length, checksum, index length, index), without trusting any length.
func checkTable(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	pos := len(b) - 4
	if pos < 0 {
		return fmt.Errorf("%d bytes: too short for a table", len(b))
	}
	ckLen := int(binary.BigEndian.Uint32(b[pos:]))
	if ckLen > pos-4 {
		return fmt.Errorf("%d bytes: the footer's checksum length %d runs past the start: truncated or overwritten", len(b), ckLen)
	}
	pos -= ckLen
	var ck pb.Checksum
	if err := proto.Unmarshal(b[pos:pos+ckLen], &ck); err != nil {
		return fmt.Errorf("index checksum: %v", err)
	}
	pos -= 4
	ixLen := int(binary.BigEndian.Uint32(b[pos:]))
	if ixLen > pos {
		return fmt.Errorf("%d bytes: the footer's index length %d runs past the start: truncated or overwritten", len(b), ixLen)
	}
	if err := y.VerifyChecksum(b[pos-ixLen:pos], &ck); err != nil {
		return fmt.Errorf("index: %v", err)
	}
	return nil
}

// isCorruption says whether an error of badger.Open comes from damaged files
// (a checksum that does not match, a table it cannot read).
func isCorruption(err error) bool {
	msg := err.Error()
	return errors.Is(err, y.ErrChecksumMismatch) || strings.Contains(msg, "checksum") ||
		strings.Contains(msg, "Opening table") || strings.Contains(msg, "MANIFEST")
}
