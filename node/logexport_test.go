package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/zopeer/zopeer/store"
	"github.com/zopeer/zopeer/zo"
)

// TestExportLog writes a home's log as JSON lines, checks every line against
// the log, and refuses a home in use.
func TestExportLog(t *testing.T) {
	home := t.TempDir()
	m := store.Manifest{Run: "export", Dist: "rademacher", Eps: 1e-3, LR: 1e-4, Quant: quantScheme}
	if err := WriteManifest(filepath.Join(home, ManifestFile), m); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), filepath.Join(home, "store"), m)
	if err != nil {
		t.Fatal(err)
	}
	us := []zo.Update{{Machine: 2, Sample: 0, Exp: 120, Code: -3}, {Machine: 1, Sample: 5, Exp: 121, Code: 7}, {Machine: 1, Sample: 4, Exp: 121, Code: 0}}
	if _, err := st.Append(context.Background(), us...); err != nil {
		t.Fatal(err)
	}
	st.Close()

	var out bytes.Buffer
	sum, err := ExportLog(context.Background(), home, &out)
	if err != nil {
		t.Fatal(err)
	}
	var lines []map[string]any
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s: %v", sc.Bytes(), err)
		}
		lines = append(lines, l)
	}
	canon, _ := m.Canonical()
	if len(lines) != 5 || lines[0]["format"] != LogFormat || lines[0]["manifest"] != string(canon) {
		t.Fatalf("lines %v", lines)
	}
	if lines[1]["machine"] != "0000000000000001" || lines[1]["sample"] != 4.0 || lines[3]["code"] != -3.0 {
		t.Fatalf("updates out of order or wrong: %v", lines[1:4])
	}
	var d zo.SetDigest
	for _, u := range us {
		d.Add(u)
	}
	if lines[4]["end"] != true || lines[4]["updates"] != 3.0 || lines[4]["set_digest"] != d.String() || sum.SetDigest != d {
		t.Fatalf("trailer %v", lines[4])
	}
	// A running peer holds the home's lock: the export refuses, clearly.
	lock, err := lockHome(home)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := ExportLog(context.Background(), home, &out); err == nil {
		t.Fatal("exported a home in use")
	}
}
