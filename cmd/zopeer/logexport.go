package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/zopeer/zopeer/node"
)

// logCommand is `zopeer log export`: the update log of a home, as JSON lines
// (docs/STORE.md, "Exporting the log"), and a check of the run's base weights.
func logCommand(fs *flag.FlagSet) func(context.Context, *slog.Logger, io.Writer, []string) error {
	home := fs.String("home", "", "the peer's home directory (its daemon must be stopped)")
	out := fs.String("out", "", "write the export to this file instead of standard output")
	model := fs.String("model", "", "check that this checkpoint directory holds the run's base weights (default: HOME/default-model when the run uses the embedded default)")
	return func(ctx context.Context, log *slog.Logger, stdout io.Writer, args []string) error {
		if len(args) == 0 || args[0] != "export" {
			return usageError{fmt.Errorf("usage: zopeer log export --home H [--out FILE] [--model DIR]")}
		}
		if err := fs.Parse(args[1:]); err != nil { // flags after the subcommand
			return usageError{err}
		}
		if fs.NArg() > 0 {
			return usageError{fmt.Errorf("unexpected arguments %v", fs.Args())}
		}
		if *home == "" {
			return usageError{fmt.Errorf("--home is required")}
		}
		if dir := *model; dir != "" || exists(filepath.Join(*home, "default-model")) {
			if dir == "" {
				dir = filepath.Join(*home, "default-model")
			}
			m, err := node.ReadManifest(filepath.Join(*home, node.ManifestFile))
			if err != nil {
				return err
			}
			if err := node.CheckBase(dir, m); err != nil {
				return err
			}
			log.Info("base weights verified", "model", dir, "base_digest", fmt.Sprintf("%x", m.BaseDigest))
		}
		w := stdout
		var f *os.File
		if *out != "" {
			var err error
			if f, err = os.Create(*out); err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		sum, err := node.ExportLog(ctx, *home, w)
		if err != nil {
			return err
		}
		if f != nil {
			if err := f.Close(); err != nil {
				return err
			}
		}
		log.Info("log exported", "updates", sum.Updates, "excluded", sum.Excluded, "set_digest", sum.SetDigest.String())
		return nil
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
