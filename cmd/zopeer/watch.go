package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/zopeer/zopeer/node"
)

// apiFlags declares --api and --home for commands that talk to a running
// peer, and returns the address to use: the one in --home's api.addr when
// --home is given, else --api.
func apiFlags(fs *flag.FlagSet) func() (string, error) {
	api := fs.String("api", node.PeerDefaults.API, "address of the peer's HTTP API")
	home := fs.String("home", "", "the peer's home: read the API address from its "+node.APIAddrFile+" (wins over --api)")
	return func() (string, error) {
		if *home == "" {
			return *api, nil
		}
		b, err := os.ReadFile(filepath.Join(*home, node.APIAddrFile))
		if err != nil {
			return "", fmt.Errorf("no peer has run in %s (%w): is `zopeer start --home %s` running?", *home, err, *home)
		}
		return strings.TrimSpace(string(b)), nil
	}
}

// getJSON fetches path from the peer at api into v, returning the raw body.
func getJSON(ctx context.Context, api, path string, v any) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+api+path, nil)
	if err != nil {
		return nil, usageError{err}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("no zopeer node answers at %s: %w", api, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s%s: %s", api, path, resp.Status)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, fmt.Errorf("%s%s: %w", api, path, err)
	}
	return body, nil
}

func peersCommand(fs *flag.FlagSet) func(context.Context, *slog.Logger, io.Writer, []string) error {
	addr := apiFlags(fs)
	asJSON := fs.Bool("json", false, "print the peers as JSON")
	return func(ctx context.Context, log *slog.Logger, out io.Writer, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("unexpected arguments %q", args)}
		}
		api, err := addr()
		if err != nil {
			return err
		}
		var ps []node.PeerView
		body, err := getJSON(ctx, api, "/api/peers", &ps)
		if err != nil {
			return err
		}
		if *asJSON {
			_, err := out.Write(body)
			return err
		}
		if len(ps) == 0 {
			fmt.Fprintln(out, "no peer connected")
			return nil
		}
		tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MACHINE\tPEER\tLINK\tCONTRIB\tLAG\tLAST SEEN\tAGREEMENT\tADDRESS")
		for _, p := range ps {
			link := "direct"
			if p.Relayed {
				link = "relayed"
			}
			lag, seen := "-", "never"
			if p.Lag != nil {
				lag = fmt.Sprintf("%+d", *p.Lag)
			}
			if t, err := time.Parse(time.RFC3339, p.LastSeen); err == nil {
				seen = time.Since(t).Round(time.Second).String() + " ago"
			}
			addr := "-"
			if len(p.Addrs) > 0 {
				addr = p.Addrs[0]
			}
			fmt.Fprintf(tw, "%s\t…%s\t%s\t%v\t%s\t%s\t%s\t%s\n", p.Machine, p.ID[max(0, len(p.ID)-8):], link, yes(p.Contributing), lag, seen, p.Agreement, addr)
		}
		return tw.Flush()
	}
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func versionCommand(fs *flag.FlagSet) func(context.Context, *slog.Logger, io.Writer, []string) error {
	return func(ctx context.Context, log *slog.Logger, out io.Writer, args []string) error {
		if len(args) > 0 {
			return usageError{errors.New("zopeer version takes no arguments")}
		}
		v, c, g := node.Version()
		fmt.Fprintf(out, "zopeer %s\ncommit %s\n%s %s/%s\n", v, c, g, runtime.GOOS, runtime.GOARCH)
		return nil
	}
}

// shareableAddrs turns listen multiaddrs into dialable ones with /p2p/id:
// unspecified addresses (0.0.0.0, ::) become this machine's interface
// addresses, loopback last.
func shareableAddrs(listen []string, id string) []string {
	ifaces, _ := manet.InterfaceMultiaddrs()
	var out, lo []string
	for _, l := range listen {
		a, err := ma.NewMultiaddr(l)
		if err != nil {
			continue
		}
		rs, err := manet.ResolveUnspecifiedAddresses([]ma.Multiaddr{a}, ifaces)
		if err != nil {
			continue
		}
		for _, r := range rs {
			s := r.String() + "/p2p/" + id
			if manet.IsIPLoopback(r) {
				lo = append(lo, s)
			} else {
				out = append(out, s)
			}
		}
	}
	return append(out, lo...)
}

// printWatch adds what `zopeer status` shows of watching the run: state,
// uptime, rates, traffic, catch-up and addresses.
func printWatch(out io.Writer, st node.Status) {
	fmt.Fprintf(out, "state         %s (up %s)\n", st.State, (time.Duration(st.Uptime) * time.Second).String())
	fmt.Fprintf(out, "rates         %.1f updates/s (own %.1f), %s/s in, %s/s out\n", st.Rates.UpdatesPerSec, st.Rates.OwnUpdatesPerSec,
		bytesHuman(st.Rates.BytesInPerSec), bytesHuman(st.Rates.BytesOutPerSec))
	fmt.Fprintf(out, "traffic       %s in, %s out\n", bytesHuman(float64(st.P2P.BytesIn)), bytesHuman(float64(st.P2P.BytesOut)))
	if c := st.CatchUp; c != nil {
		eta := "?"
		if c.ETASeconds >= 0 {
			eta = (time.Duration(c.ETASeconds) * time.Second).String()
		}
		fmt.Fprintf(out, "catch-up      %d of %d updates (%.1f%%), ETA %s\n", c.Have, c.Target, c.Percent, eta)
	}
	for i, a := range st.Addrs {
		label := ""
		if i == 0 {
			label = "addresses"
		}
		fmt.Fprintf(out, "%-13s %s\n", label, a)
	}
	fmt.Fprintf(out, "dashboard     http://%s/\n", st.API)
}

func bytesHuman(n float64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", n/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", n/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", n/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", n)
	}
}
