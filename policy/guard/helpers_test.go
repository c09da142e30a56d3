package guard

import (
	"strings"
	"testing"
)

// cmd splits a command line on spaces into args.
func cmd(line string) [][]byte {
	var args [][]byte
	for _, f := range strings.Fields(line) {
		args = append(args, []byte(f))
	}
	return args
}

// join renders args as a space-separated line (the DEL script as <script>).
func join(args [][]byte) string {
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = string(a)
		if string(a) == unlinkScript {
			parts[i] = "<unlink>"
		}
		if string(a) == sortSizeScript {
			parts[i] = "<sortsize>"
		}
	}
	return strings.Join(parts, " ")
}

func newGuard(t testing.TB, cfg Config) *Guard {
	t.Helper()
	g, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// probeLines renders a plan's probes.
func probeLines(p Plan) []string {
	var out []string
	for _, pr := range p.Probes {
		out = append(out, join(pr))
	}
	return out
}
