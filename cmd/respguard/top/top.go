package top

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Options configure Run.
type Options struct {
	Admin    string        // admin endpoint, host:port or URL
	Interval time.Duration // between samples; also --once's measuring time
	Once     bool          // print one screen as plain text and exit
	Sort     SortKey
}

// Main parses `respguard top` arguments and runs it: the live view on the
// terminal, or with --once one plain-text screen on out.
func Main(ctx context.Context, args []string, out io.Writer) error {
	opts, err := parseFlags(args, out)
	if errors.Is(err, pflag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	src := NewSource(opts.Admin)
	src.Client = &http.Client{Timeout: max(opts.Interval, 2*time.Second)}
	if opts.Once {
		return PrintOnce(ctx, src, opts, out)
	}
	return RunTerminal(ctx, src, opts)
}

func parseFlags(args []string, out io.Writer) (Options, error) {
	fs := pflag.NewFlagSet("respguard top", pflag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintln(out, "usage: respguard top [--admin host:port] [--interval 1s] [--sort ops|p99|errors|name] [--once]")
		fmt.Fprintln(out, "Live view of a running respguard, read from its admin endpoint. Keys: "+Help)
		fs.PrintDefaults()
	}
	var opts Options
	var sort string
	fs.StringVar(&opts.Admin, "admin", "127.0.0.1:9180", "respguard's admin endpoint (admin.listen)")
	fs.DurationVar(&opts.Interval, "interval", time.Second, "refresh interval")
	fs.BoolVar(&opts.Once, "once", false, "print one screen as plain text (two samples, interval apart) and exit")
	fs.StringVar(&sort, "sort", "ops", "command table order: ops, p99, errors or name")
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	if fs.NArg() > 0 {
		return opts, fmt.Errorf("top: unexpected argument %q", fs.Arg(0))
	}
	if opts.Interval <= 0 {
		return opts, fmt.Errorf("top: --interval must be positive, got %s", opts.Interval)
	}
	k, ok := sortKeyByFlag[sort]
	if !ok {
		return opts, fmt.Errorf("top: --sort %q: want ops, p99, errors or name", sort)
	}
	opts.Sort = k
	return opts, nil
}

var sortKeyByFlag = map[string]SortKey{"ops": ByOps, "p99": ByP99, "errors": ByErrors, "name": ByName}

// PrintOnce samples twice, opts.Interval apart, and writes the view as
// plain text with every command.
func PrintOnce(ctx context.Context, src *Source, opts Options, out io.Writer) error {
	first, err := src.Fetch(ctx)
	if first == nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(opts.Interval):
	}
	second, err := src.Fetch(ctx)
	if second == nil {
		return err
	}
	text := strings.Join(Render(NewView(src.Base, first, second, opts.Sort), 0, 0), "\n") + "\n"
	if _, werr := io.WriteString(out, text); werr != nil {
		return werr
	}
	return err // a /debug table that failed: the screen is printed, the exit status says so
}
