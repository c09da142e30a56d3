package proxy

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/policy/guard"
	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/redistest"
	"github.com/respguard/respguard/proxy/resp"
)

// The differential test runs each simulated client's command sequence twice:
// through respguard in front of one redis-server, and directly against a
// second redis-server configured identically (the proxy's policy users are
// created there with ACL SETUSER, the renamed command is renamed there too).
// Each client's reply stream must be the same both ways, byte for byte after
// a few narrow normalizations (sameReply), and no reply may carry another
// client's token. Many clients run at once, so they share respguard's
// upstream connections the way real clients do.
//
// Each step of a sequence is written in one go, followed by a trailer that
// brings any state back to where a PING answers and marks the step's end:
// DISCARD (an open MULTI), CLIENT REPLY ON (replies switched off) and
// PING <marker>. Both runs read replies up to the marker reply, so a step
// may produce any number of replies, and the two lists are compared. A reply
// respguard owes but never sends is a hang, reported with the sequence so far.

// pendingFamilies are grammar families that still diverge: they are left
// out of the runs unless RESPGUARD_DIFF_PENDING=1. Each entry says what
// diverges; TestDifferentialCases has a short reproducer of each.
var pendingFamilies = map[string]string{}

// diffReadTimeout bounds each step's wait for its replies. The slowest step
// blocks for 50 ms; the rest is headroom for a loaded 2-core machine.
const diffReadTimeout = 15 * time.Second

// diffRig is respguard in front of one redis-server, and a second
// redis-server configured as respguard presents itself.
type diffRig struct {
	proxyAddr, directAddr string
	families              map[string]bool // enabled families
	tokens                atomic.Int64    // last token number handed out
}

// startDiffRig starts both servers and the proxy, with sharedConns shared
// upstream connections per (db, protocol).
func startDiffRig(t testing.TB, sharedConns int) *diffRig {
	t.Helper()
	limit := strconv.Itoa(bulkLimit)
	upstream := redistest.Start(t, "--proto-max-bulk-len", limit)
	direct := redistest.Start(t, "--proto-max-bulk-len", limit, "--rename-command", "ECHO", "")
	mirrorUsers(t, direct.Addr)

	users := map[string]string{}
	for _, u := range append(diffUsers, noExecUser) {
		users[u.name] = "on >" + u.password + " " + u.rules
	}
	// Scripts run as mirror users with the same rules, so Redis judges their
	// calls as it does for the direct run's users.
	pol := newPolicy(t, policy.Config{Users: users, DefaultRules: policy.PresetProduction, Rename: map[string]string{"ECHO": ""},
		ScriptIdentity: policy.ScriptsMirror})
	grd, err := guard.New(guard.Config{RequireTTL: []string{guardTTLPattern}, MaxElements: guardMaxElements, SizeCacheTTL: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tp := startProxyWith(t, upstream, func(_ *Config, pc *pool.Config) { pc.SharedConns = sharedConns }, Options{Policy: pol, Guard: grd})
	return &diffRig{proxyAddr: tp.Addr, directAddr: direct.Addr, families: enabledFamilies()}
}

// mirrorUsers creates respguard's users on the direct server, with the
// production preset appended as respguard does, and gives the default user
// the preset too.
func mirrorUsers(t testing.TB, addr string) {
	t.Helper()
	var preset []string
	for _, r := range policy.ProductionRules {
		preset = append(preset, r.Rule)
	}
	setuser := func(name string, rules ...string) {
		args := append(append([]string{"ACL", "SETUSER", name}, rules...), preset...)
		if _, err := redistest.Do(addr, args...); err != nil {
			t.Fatalf("ACL SETUSER %s: %v", name, err)
		}
	}
	for _, u := range append(diffUsers, noExecUser) {
		setuser(u.name, append([]string{"reset", "on", ">" + u.password}, strings.Fields(u.rules)...)...)
	}
	setuser("default") // last: it takes ACL SETUSER away from the default user
}

// enabledFamilies is diffFamilies without the pending ones, unless
// RESPGUARD_DIFF_PENDING is set; RESPGUARD_DIFF_FAMILIES=a,b keeps only those.
func enabledFamilies() map[string]bool {
	only := map[string]bool{}
	for _, name := range strings.Split(os.Getenv("RESPGUARD_DIFF_FAMILIES"), ",") {
		if name != "" {
			only[name] = true
		}
	}
	fams := map[string]bool{}
	for _, f := range diffFamilies {
		_, pending := pendingFamilies[f.name]
		fams[f.name] = (!pending || os.Getenv("RESPGUARD_DIFF_PENDING") != "") && (len(only) == 0 || only[f.name])
	}
	return fams
}

// diffStats counts what a run compared.
type diffStats struct {
	sequences, steps, commands, replies atomic.Int64
}

func (s *diffStats) String() string {
	return fmt.Sprintf("%d sequences, %d steps, %d commands, %d replies compared",
		s.sequences.Load(), s.steps.Load(), s.commands.Load(), s.replies.Load())
}

// runClients runs one sequence per choice string, all at once, and returns
// every divergence found.
func (rig *diffRig) runClients(inputs [][]byte, stats *diffStats) []error {
	errs := make([]error, len(inputs))
	var wg sync.WaitGroup
	for i, in := range inputs {
		wg.Go(func() {
			tok := fmt.Sprintf("tk%08d", rig.tokens.Add(1))
			c := &diffClient{rig: rig, stats: stats, gen: &diffGen{ch: &byteChoices{b: in}, tok: tok, enabled: rig.families}}
			errs[i] = c.run()
			if errs[i] != nil {
				errs[i] = fmt.Errorf("client %s (choices %x):\n%w\nsequence so far:\n%s", tok, in, errs[i], c.transcript.String())
			}
		})
	}
	wg.Wait()
	return errs
}

// diffClient runs one sequence through respguard and directly.
type diffClient struct {
	rig           *diffRig
	stats         *diffStats
	gen           *diffGen
	proxy, direct *diffConn
	marker        int
	transcript    strings.Builder
}

func (c *diffClient) run() error {
	defer c.close()
	c.stats.sequences.Add(1)
	if err := c.connect(); err != nil {
		return err
	}
	for range 64 {
		st, ok := c.gen.next()
		if !ok {
			break
		}
		if err := c.do(st); err != nil {
			return err
		}
	}
	return c.do(diffStep{family: "end"})
}

// connect dials both sides and runs the generator's connect step.
func (c *diffClient) connect() error {
	if err := c.dial(); err != nil {
		return err
	}
	return c.do(c.gen.connect())
}

// dial (re)opens both sides' connections.
func (c *diffClient) dial() error {
	c.close()
	var err error
	if c.proxy, err = dialDiff("respguard", c.rig.proxyAddr); err != nil {
		return err
	}
	c.direct, err = dialDiff("redis", c.rig.directAddr)
	return err
}

func (c *diffClient) close() {
	for _, dc := range []*diffConn{c.proxy, c.direct} {
		if dc != nil {
			dc.conn.Close()
		}
	}
	c.proxy, c.direct = nil, nil
}

// do runs one step both ways and compares the replies. When the direct
// server closed the connection (QUIT, a protocol error), respguard must have
// closed it too, and the client reconnects.
func (c *diffClient) do(st diffStep) error {
	c.marker++
	marker := fmt.Sprintf("sync:%s:%d", c.gen.tok, c.marker)
	proxyReq, directReq := encodeStep(st, marker)
	c.logStep(st)
	c.stats.steps.Add(1)
	c.stats.commands.Add(int64(len(st.cmds)))
	want, err := c.direct.exchange(directReq, marker)
	if err != nil {
		return fmt.Errorf("direct run: %w", err)
	}
	got, err := c.proxy.exchange(proxyReq, marker)
	if err != nil {
		return fmt.Errorf("through respguard, after %d replies %q: %w", len(got), got, err)
	}
	c.stats.replies.Add(int64(len(want)))
	if err := c.compare(want, got); err != nil {
		return err
	}
	if len(want) > 0 && want[len(want)-1] == replyClosed {
		return c.connect()
	}
	return nil
}

// encodeStep returns what each side is sent: the step's commands, then (unless
// the step ends in a protocol error) the trailer.
func encodeStep(st diffStep, marker string) (proxyReq, directReq []byte) {
	if st.raw != "" {
		return []byte(st.raw), []byte(st.raw)
	}
	for _, dc := range st.cmds {
		proxyReq = resp.AppendCommandStrings(proxyReq, dc.args...)
		args := dc.args
		if dc.direct != nil {
			args = dc.direct
		}
		directReq = resp.AppendCommandStrings(directReq, args...)
	}
	var trailer []byte
	for _, args := range [][]string{{"DISCARD"}, {"CLIENT", "REPLY", "ON"}, {"PING", marker}} {
		trailer = resp.AppendCommandStrings(trailer, args...)
	}
	return append(proxyReq, trailer...), append(directReq, trailer...)
}

func (c *diffClient) logStep(st diffStep) {
	fmt.Fprintf(&c.transcript, "  [%s]", st.family)
	if st.raw != "" {
		fmt.Fprintf(&c.transcript, " raw %q", st.raw)
	}
	for _, dc := range st.cmds {
		fmt.Fprintf(&c.transcript, " %q;", dc.args)
	}
	c.transcript.WriteString("\n")
}

// tokenPattern matches any client's token.
var tokenPattern = regexp.MustCompile(`tk[0-9]{8}`)

// compare checks the proxy's replies against the direct ones and for tokens
// of other clients.
func (c *diffClient) compare(want, got []string) error {
	for i, r := range got {
		for _, tok := range tokenPattern.FindAllString(r, -1) {
			if tok != c.gen.tok {
				return fmt.Errorf("reply %d carries another client's token %s: %q", i, tok, r)
			}
		}
	}
	for i := range max(len(want), len(got)) {
		if i >= len(want) || i >= len(got) || !sameReply(want[i], got[i]) {
			return fmt.Errorf("replies differ at %d:\n  redis:     %q\n  respguard: %q", i, want, got)
		}
	}
	return nil
}

// helloID matches the id field of a HELLO reply, which is respguard's own
// client id through respguard (README, Differences).
var helloID = regexp.MustCompile(`\$2\r\nid\r\n:[0-9]+\r\n`)

var (
	unknownCommandErr    = regexp.MustCompile(`^-ERR unknown command '([^']*)', with args beginning with: `)
	noPermCommandErr     = regexp.MustCompile(`^-NOPERM this user has no permissions to run the '([^']*)' command`)
	unknownSubcommandErr = regexp.MustCompile(`^-ERR unknown subcommand '([^']*)'\. Try ([A-Z]+) HELP\.`)
	guardOversize        = regexp.MustCompile(`^-ERR respguard: \S+ on '[^']*' would return ([0-9]+) `)
	refusedInMultiErr    = regexp.MustCompile(`^-ERR respguard: '[^']*' is not supported inside MULTI|` +
		`^-NOPERM respguard runs the scripts of user '[^']*' as Redis user '[^']*' on a connection of their own, so not inside MULTI`)
)

// sameReply reports whether the proxy's reply p stands for the direct reply d.
// Beyond equality, only documented differences are accepted.
func sameReply(d, p string) bool {
	if d == p {
		return true
	}
	d, p = helloID.ReplaceAllString(d, "$$2\r\nid\r\n:ID\r\n"), helloID.ReplaceAllString(p, "$$2\r\nid\r\n:ID\r\n")
	if d == p {
		return true
	}
	// The guard's refusal stands where the direct run had the placeholder.
	if strings.HasPrefix(d, "-ERR unknown command '"+guardRefusalPlaceholder+"'") {
		return strings.HasPrefix(p, "-ERR respguard: ")
	}
	// So does respguard's refusal of a state-changing command or a script
	// inside MULTI.
	if strings.HasPrefix(d, "-ERR unknown command '"+multiRefusalPlaceholder+"'") {
		return refusedInMultiErr.MatchString(p)
	}
	// The guard refuses a read above max_elements that Redis answers: the
	// refusal must give the size Redis's answer has.
	if m := guardOversize.FindStringSubmatch(p); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n > guardMaxElements && strings.HasPrefix(d, "*"+m[1]+"\r\n")
	}
	// Every user carries the production preset, so none has all commands, and
	// respguard denies a command it does not know where Redis says it does not
	// know it (README, Policy: known differences).
	n := noPermCommandErr.FindStringSubmatch(p)
	if n == nil {
		return false
	}
	if m := unknownCommandErr.FindStringSubmatch(d); m != nil {
		return strings.EqualFold(m[1], n[1])
	}
	if m := unknownSubcommandErr.FindStringSubmatch(d); m != nil {
		return strings.EqualFold(m[2]+"|"+m[1], n[1])
	}
	return false
}

// replyClosed stands for the server closing the connection in a reply list.
const replyClosed = "<connection closed>"

// diffConn is one side of a client: a raw connection and its reply framer.
type diffConn struct {
	side string
	conn net.Conn
	rd   *resp.ReplyReader
}

func dialDiff(side, addr string) (*diffConn, error) {
	conn, err := net.DialTimeout("tcp", addr, diffReadTimeout)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", side, err)
	}
	return &diffConn{side: side, conn: conn, rd: resp.NewReplyReader(conn)}, nil
}

// frameSink collects one reply's bytes.
type frameSink struct{ buf []byte }

func (s *frameSink) WriteReply(p []byte, _ bool) { s.buf = append(s.buf, p...) }

// exchange writes req and reads replies up to and including the one holding
// marker, or up to the connection's close (then the last reply is
// replyClosed). The marker reply itself is compared too.
func (dc *diffConn) exchange(req []byte, marker string) ([]string, error) {
	_ = dc.conn.SetDeadline(time.Now().Add(diffReadTimeout))
	if _, err := dc.conn.Write(req); err != nil && !isClosed(err) {
		return nil, fmt.Errorf("write to %s: %w", dc.side, err)
	}
	var replies []string
	for {
		var sink frameSink
		err := dc.rd.ReadReply(&sink)
		switch {
		case err != nil && isClosed(err) && len(sink.buf) == 0:
			return append(replies, replyClosed), nil
		case err != nil:
			return replies, fmt.Errorf("read from %s: %w", dc.side, err)
		}
		replies = append(replies, string(sink.buf))
		if bytes.Contains(sink.buf, []byte(marker)) {
			return replies, nil
		}
	}
}

// isClosed reports whether err means the peer closed the connection.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func sha1Hex(body string) string {
	sum := sha1.Sum([]byte(body))
	return hex.EncodeToString(sum[:])
}

// diffRounds is how many rounds TestDifferential runs
// (RESPGUARD_DIFF_ROUNDS, default 5).
func diffRounds(t *testing.T) int {
	s := os.Getenv("RESPGUARD_DIFF_ROUNDS")
	if s == "" {
		return 5
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("RESPGUARD_DIFF_ROUNDS=%q: want a positive number", s)
	}
	return n
}

// diffSeed is RESPGUARD_DIFF_SEED, or a fresh seed.
func diffSeed(t *testing.T) uint64 {
	s := os.Getenv("RESPGUARD_DIFF_SEED")
	if s == "" {
		return rand.Uint64()
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("RESPGUARD_DIFF_SEED=%q: %v", s, err)
	}
	return n
}

const (
	diffClients    = 16  // clients at once in each round of TestDifferential
	diffChoiceSize = 256 // choice bytes per client: some 20 steps of enabled families
)

// TestDifferential runs rounds of concurrent random sequences through
// respguard and directly against Redis, and fails on the first divergence,
// printing the seed and each failing client's sequence.
func TestDifferential(t *testing.T) {
	rig := startDiffRig(t, 2)
	seed := diffSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var stats diffStats
	start := time.Now()
	for round := range diffRounds(t) {
		inputs := make([][]byte, diffClients)
		for i := range inputs {
			inputs[i] = make([]byte, diffChoiceSize)
			for j := range inputs[i] {
				inputs[i][j] = byte(rng.Uint32())
			}
		}
		if failed := reportDiff(t, rig.runClients(inputs, &stats)); failed {
			t.Fatalf("round %d diverged; replay with RESPGUARD_DIFF_SEED=%d", round, seed)
		}
	}
	t.Logf("seed %d: %s in %v", seed, &stats, time.Since(start).Round(time.Millisecond))
}

// reportDiff reports each error and whether there was one.
func reportDiff(t testing.TB, errs []error) bool {
	t.Helper()
	failed := false
	for _, err := range errs {
		if err != nil {
			t.Error(err)
			failed = true
		}
	}
	return failed
}

// FuzzDifferential drives the grammar with the fuzzer's bytes: the first byte
// picks how many clients run at once (1 to 4), the rest is split between them.
func FuzzDifferential(f *testing.F) {
	rig := startDiffRig(f, 2)
	f.Fuzz(func(t *testing.T, in []byte) {
		if inputs := splitFuzzInput(in); inputs != nil {
			reportDiff(t, rig.runClients(inputs, &diffStats{}))
		}
	})
}

// splitFuzzInput cuts a fuzz input into the choices of each client: the first
// byte picks how many (1 to 4), the rest is split evenly.
func splitFuzzInput(in []byte) [][]byte {
	if len(in) == 0 {
		return nil
	}
	n := 1 + int(in[0])%4
	in = in[1:]
	inputs := make([][]byte, n)
	for i := range inputs {
		inputs[i] = in[i*len(in)/n : (i+1)*len(in)/n]
	}
	return inputs
}

// seedDir holds FuzzDifferential's seed corpus.
var seedDir = filepath.Join("testdata", "fuzz", "FuzzDifferential")

// TestDifferentialSeedsCoverEveryFamily checks that the seed corpus draws
// every family of the grammar. RESPGUARD_DIFF_WRITE_SEEDS=1 rewrites the
// corpus: per family, one input of 1 to 4 clients whose every step is of that
// family.
func TestDifferentialSeedsCoverEveryFamily(t *testing.T) {
	if os.Getenv("RESPGUARD_DIFF_WRITE_SEEDS") != "" {
		writeDiffSeeds(t)
	}
	files, err := os.ReadDir(seedDir)
	if err != nil {
		t.Fatal(err)
	}
	drawn := map[string]bool{}
	for _, f := range files {
		in := readSeed(t, filepath.Join(seedDir, f.Name()))
		for _, chunk := range splitFuzzInput(in) {
			g := &diffGen{ch: &byteChoices{b: chunk}, tok: "tk00000000"}
			g.connect()
			for st, ok := g.next(); ok; st, ok = g.next() {
				drawn[st.family] = true
			}
		}
	}
	for _, f := range diffFamilies {
		if !drawn[f.name] {
			t.Errorf("no seed draws family %q; rewrite the corpus with RESPGUARD_DIFF_WRITE_SEEDS=1", f.name)
		}
	}
}

// writeDiffSeeds writes the seed corpus, from a fixed seed.
func writeDiffSeeds(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	if err := os.MkdirAll(seedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, f := range diffFamilies {
		clients := 1 + i%4
		chunks := make([][]byte, clients)
		longest := 0
		for c := range chunks {
			ch := &byteChoices{record: func() byte { return byte(rng.Uint32()) }, forceFamily: i}
			g := &diffGen{ch: ch, tok: "tk00000000"}
			g.connect()
			for range 6 {
				g.next()
			}
			chunks[c] = ch.b
			longest = max(longest, len(ch.b))
		}
		// Equal chunks, as splitFuzzInput cuts them: pad each to the longest
		// (a zero byte draws the first family, or the first option).
		in := []byte{byte(clients - 1)}
		for _, c := range chunks {
			in = append(append(in, c...), make([]byte, longest-len(c))...)
		}
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", in)
		if err := os.WriteFile(filepath.Join(seedDir, "family-"+f.name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readSeed decodes a corpus file of one []byte value.
func readSeed(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
		t.Fatalf("%s: not a corpus file of one []byte", path)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}
