// Package config resolves a command's settings from, in order of precedence,
// its command-line flags, ZOPEER_* environment variables and a TOML file, over
// the defaults declared with the flags. Every flag thus has an environment
// twin (--peer-id → ZOPEER_PEER_ID) and a config-file key (peer-id), either at
// the top level of the file or in a [command] table that overrides it.
package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// FileFlag is the flag (and ZOPEER_CONFIG the variable) naming the config file.
const FileFlag = "config"

// EnvName is the environment twin of a flag.
func EnvName(flagName string) string {
	return "ZOPEER_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args into fs, then fills every flag not given on the command
// line from the environment or the config file. known lists every key any
// command accepts, so a top-level key meant for another command is accepted
// while a typo is an error. fs must define FileFlag.
func Parse(fs *flag.FlagSet, command string, args []string, known map[string]bool) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	path := fs.Lookup(FileFlag).Value.String()
	if !given[FileFlag] {
		if v, ok := os.LookupEnv(EnvName(FileFlag)); ok {
			path = v
		}
	}
	file, err := readFile(path, fs, command, known)
	if err != nil {
		return err
	}

	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || f.Name == FileFlag {
			return
		}
		if v, ok := os.LookupEnv(EnvName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("config: %s=%q: %w", EnvName(f.Name), v, err))
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("config: %s: key %q = %q: %w", path, f.Name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

// readFile returns the file's values for command: its top level overridden by
// its [command] table. A missing path is no file; a missing file is an error.
func readFile(path string, fs *flag.FlagSet, command string, known map[string]bool) (map[string]string, error) {
	out := map[string]string{}
	if path == "" {
		return out, nil
	}
	var doc map[string]any
	if _, err := toml.DecodeFile(path, &doc); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var bad []string
	for k, v := range doc {
		if tab, ok := v.(map[string]any); ok {
			if !known["["+k+"]"] {
				bad = append(bad, "["+k+"]")
				continue
			}
			if k != command {
				continue
			}
			for kk, vv := range tab {
				if fs.Lookup(kk) == nil || kk == FileFlag {
					bad = append(bad, k+"."+kk)
					continue
				}
				out[kk] = format(vv)
			}
			continue
		}
		if !known[k] || k == FileFlag {
			bad = append(bad, k)
			continue
		}
		if _, set := out[k]; !set && fs.Lookup(k) != nil {
			out[k] = format(v)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return nil, fmt.Errorf("config: %s: unknown keys: %s", path, strings.Join(bad, ", "))
	}
	return out, nil
}

// format turns a TOML value into flag syntax; arrays become comma lists.
func format(v any) string {
	if xs, ok := v.([]any); ok {
		parts := make([]string, len(xs))
		for i, x := range xs {
			parts[i] = format(x)
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v)
}

// List is a comma-separated list flag (--bootstrap a,b): each Set replaces
// the list, so a flag, its environment twin and a config value mean the same.
type List []string

func (l *List) String() string { return strings.Join(*l, ",") }

// Set replaces the list with the non-empty, trimmed items of v.
func (l *List) Set(v string) error {
	*l = nil
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x != "" {
			*l = append(*l, x)
		}
	}
	return nil
}
