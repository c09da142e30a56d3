package policy

import (
	"bufio"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/pool/redistest"
)

// This file checks respguard's decisions against the real oracle: a
// redis-server with the same users, asked with ACL DRYRUN and by running
// the denied commands as those users.

type testUser struct{ name, rules string }

func loadUsers(t testing.TB) []testUser {
	t.Helper()
	var users []testUser
	for _, line := range readLines(t, "testdata/users.txt") {
		name, rules, _ := strings.Cut(line, " ")
		users = append(users, testUser{name, strings.TrimSpace(rules)})
	}
	return users
}

func loadCorpus(t testing.TB) [][]string {
	t.Helper()
	var corpus [][]string
	for _, line := range readLines(t, "testdata/corpus.txt") {
		corpus = append(corpus, splitArgs(line))
	}
	return corpus
}

// readLines returns the non-blank lines of path that are not # comments.
func readLines(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			lines = append(lines, line)
		}
	}
	return lines
}

// splitArgs splits on spaces; "double quotes" group words ("" is empty).
func splitArgs(line string) []string {
	var args []string
	for line != "" {
		line = strings.TrimLeft(line, " ")
		if strings.HasPrefix(line, `"`) {
			arg, rest, _ := strings.Cut(line[1:], `"`)
			args, line = append(args, arg), rest
			continue
		}
		arg, rest, _ := strings.Cut(line, " ")
		if arg != "" {
			args = append(args, arg)
		}
		line = rest
	}
	return args
}

func toBytes(args []string) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = []byte(a)
	}
	return out
}

func toAny(args ...string) []any {
	out := make([]any, len(args))
	for i, a := range args {
		out[i] = a
	}
	return out
}

// startOracle starts redis-server and creates users there as
// "ACL SETUSER name reset rules...".
func startOracle(t *testing.T, users []testUser) (*redistest.Server, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: 2})
	t.Cleanup(func() { rdb.Close() })
	for _, u := range users {
		args := append([]string{"ACL", "SETUSER", u.name, "reset"}, strings.Fields(u.rules)...)
		if err := rdb.Do(t.Context(), toAny(args...)...).Err(); err != nil {
			t.Fatalf("ACL SETUSER %s: %v", u.name, err)
		}
	}
	return srv, rdb
}

func policyFor(t testing.TB, users []testUser, cmds *Commands) *Policy {
	t.Helper()
	cfg := Config{Users: map[string]string{}}
	for _, u := range users {
		cfg.Users[u.name] = u.rules
	}
	p, err := New(cfg, cmds)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// dryRunText renders a DryRunReply like go-redis renders Redis's reply.
func dryRunText(r DryRunReply) string {
	switch {
	case r.OK:
		return "OK"
	case r.Err != "":
		return "error: " + r.Err
	}
	return r.Denial
}

func redisText(cmd *redis.Cmd) string {
	if err := cmd.Err(); err != nil {
		return "error: " + err.Error()
	}
	s, _ := cmd.Val().(string)
	return s
}

// generatedCorpus has one command per table entry (every command and
// subcommand, so every category) with a valid argument count, its
// arguments drawn from keys the test users treat differently.
func generatedCorpus(cmds *Commands) [][]string {
	values := []string{"ro:1", "wo:1", "rw:1", "cache:1", "s:1", "q:1", "pub:1", "user:7", "other", "news.eu"}
	var corpus [][]string
	var add func(info CommandInfo, i int)
	add = func(info CommandInfo, i int) {
		if len(info.Subcommands) > 0 {
			for j, sub := range info.Subcommands {
				add(sub, i+j)
			}
			return
		}
		args := strings.Split(info.Name, "|")
		want := info.Arity // exact count
		if want < 0 {
			want = max(-want, len(args)+1) // at least one argument beyond the name
		}
		for n := len(args); n < want; n++ {
			args = append(args, values[(i+n)%len(values)])
		}
		corpus = append(corpus, args)
	}
	for i, info := range cmds.List() {
		if info.Name == RespguardCommand {
			continue // respguard's own: Redis does not know it
		}
		add(info, i)
	}
	return corpus
}

func TestDryRunMatchesRedis(t *testing.T) {
	users := loadUsers(t)
	_, rdb := startOracle(t, users)
	live, err := ParseCommandReply(mustSlice(t, rdb.Do(t.Context(), "COMMAND")))
	if err != nil {
		t.Fatal(err)
	}
	corpus := append(loadCorpus(t), generatedCorpus(BuiltinCommands())...)
	for _, table := range []struct {
		name string
		cmds *Commands
	}{{"the built-in table", nil}, {"the table read from the server", live}} {
		p := policyFor(t, users, table.cmds)
		t.Run("with "+table.name+" every dry run answers as Redis does", func(t *testing.T) {
			outcomes := map[string]int{}
			for _, u := range users {
				pipe := rdb.Pipeline()
				replies := make([]*redis.Cmd, len(corpus))
				for i, args := range corpus {
					replies[i] = pipe.Do(t.Context(), toAny(append([]string{"ACL", "DRYRUN", u.name}, args...)...)...)
				}
				_, _ = pipe.Exec(t.Context())
				for i, args := range corpus {
					want, got := redisText(replies[i]), dryRunText(p.DryRun(u.name, toBytes(args)))
					outcomes[strings.Fields(want + " x")[0]]++
					if strings.HasPrefix(want, "error") && testing.Verbose() {
						outcomes[want]++
					}
					if got != want {
						t.Errorf("user %s: %q: respguard %q, redis %q", u.name, args, got, want)
					}
				}
			}
			t.Logf("Redis's answers by first word: %v", outcomes)
			if outcomes["OK"] < 1000 || outcomes["This"] < 1000 {
				t.Errorf("corpus too one-sided: %v", outcomes)
			}
		})
	}
	t.Logf("%d users x %d commands", len(users), len(corpus))
}

// TestDenialTextsMatchRedis runs, as each user, the commands both respguard
// and Redis deny, and compares Redis's error reply with Decision.Err.
func TestDenialTextsMatchRedis(t *testing.T) {
	users := loadUsers(t)
	srv, rdb := startOracle(t, users)
	p := policyFor(t, users, nil)
	corpus := append(loadCorpus(t), generatedCorpus(BuiltinCommands())...)
	checked := 0
	for _, u := range users {
		password := strings.TrimPrefix(strings.Fields(u.rules)[1], ">")
		user := p.User(u.name)
		if !user.Enabled() {
			continue
		}
		var denied [][]string
		for _, args := range corpus {
			d := p.Check(user, toBytes(args))
			skip := slices.Contains([]string{"debug", "module"}, strings.ToLower(args[0])) // enable-debug-command/enable-module-command reply first
			if !d.Allowed && d.Reason != ReasonArity && !skip && p.DryRun(u.name, toBytes(args)).Denial != "" {
				denied = append(denied, args)
			}
		}
		// Redis must deny them too before we run them for real.
		pipe := rdb.Pipeline()
		dry := make([]*redis.Cmd, len(denied))
		for i, args := range denied {
			dry[i] = pipe.Do(t.Context(), toAny(append([]string{"ACL", "DRYRUN", u.name}, args...)...)...)
		}
		_, _ = pipe.Exec(t.Context())
		client := redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: 2, Username: u.name, Password: password, PoolSize: 1})
		pipe = client.Pipeline()
		var run []*redis.Cmd
		var ran [][]string
		for i, args := range denied {
			if dry[i].Err() == nil && dry[i].Val() != "OK" {
				run = append(run, pipe.Do(t.Context(), toAny(args...)...))
				ran = append(ran, args)
			}
		}
		_, _ = pipe.Exec(t.Context())
		client.Close()
		for i, args := range ran {
			var rerr redis.Error
			if !errors.As(run[i].Err(), &rerr) {
				t.Errorf("user %s: %q: Redis replied %v, want an error", u.name, args, run[i].Err())
				continue
			}
			if want, got := rerr.Error(), p.Check(user, toBytes(args)).Err; got != want {
				t.Errorf("user %s: %q: respguard %q, redis %q", u.name, args, got, want)
			}
			checked++
		}
	}
	if checked < 200 {
		t.Errorf("only %d denials compared", checked)
	}
	t.Logf("%d denial texts compared", checked)
}

func mustSlice(t testing.TB, cmd *redis.Cmd) []any {
	t.Helper()
	s, err := cmd.Slice()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
