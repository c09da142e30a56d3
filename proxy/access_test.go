package proxy

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/pool/redistest"
)

func newPolicy(t testing.TB, cfg policy.Config) *policy.Policy {
	t.Helper()
	p, err := policy.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// appPolicy: no anonymous access; a cache user; an admin.
func appPolicy(t testing.TB, mode string) *policy.Policy {
	return newPolicy(t, policy.Config{
		Mode: mode,
		Users: map[string]string{
			"default":  "off",
			"appuser":  "on >S3cret-pass ~cache:* +get +set +del +multi +exec +ping",
			"operator": "on >op-pass ~* &* +@all",
		},
		Rename: map[string]string{"FLUSHALL": "", "CONFIG": "CONFIG-b83f"},
	})
}

func expectLines(t *testing.T, rc *rawConn, want ...string) {
	t.Helper()
	for _, w := range want {
		if got := rc.line(); got != w {
			t.Fatalf("got %q, want %q", got, w)
		}
	}
}

func TestPolicyEnforcement(t *testing.T) {
	tp := startProxyWith(t, redistest.Start(t), nil, Options{Policy: appPolicy(t, "")})
	t.Run("unauthenticated clients get NOAUTH and wrong passwords WRONGPASS", func(t *testing.T) {
		rc := tp.raw(t)
		rc.send("GET cache:1\r\nAUTH appuser nope\r\nAUTH nope\r\nHELLO 3\r\n")
		expectLines(t, rc, "-NOAUTH Authentication required.",
			"-WRONGPASS invalid username-password pair or user is disabled.",
			"-WRONGPASS invalid username-password pair or user is disabled.",
			"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		if tp.Server.AuthFailures() < 2 {
			t.Fatalf("auth failures = %d", tp.Server.AuthFailures())
		}
	})
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("a RESP%d user is held to its commands and keys with Redis's error texts", proto), func(t *testing.T) {
			ctx := ctxT(t)
			c := tp.client(t, proto, func(o *redis.Options) { o.Username, o.Password = "appuser", "S3cret-pass" })
			if err := c.Set(ctx, "cache:1", "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
			err := c.Get(ctx, "secret:1").Err()
			if err == nil || err.Error() != "NOPERM this user has no permissions to access one of the keys used as arguments" {
				t.Fatalf("GET secret:1 err = %v", err)
			}
			err = c.Do(ctx, "HGETALL", "cache:1").Err()
			if err == nil || err.Error() != "NOPERM this user has no permissions to run the 'hgetall' command" {
				t.Fatalf("HGETALL err = %v", err)
			}
			if who := c.Do(ctx, "ACL", "WHOAMI").Val(); who != nil {
				t.Fatalf("ACL WHOAMI should be denied to appuser, got %v", who)
			}
		})
	}
	t.Run("a denial never reaches Redis", func(t *testing.T) {
		ctx := ctxT(t)
		before := cmdstat(t, tp, "hgetall")
		c := tp.client(t, 2, func(o *redis.Options) { o.Username, o.Password = "appuser", "S3cret-pass" })
		c.Do(ctx, "HGETALL", "cache:1")
		if after := cmdstat(t, tp, "hgetall"); after != before {
			t.Fatalf("cmdstat_hgetall went from %d to %d", before, after)
		}
	})
	t.Run("ACL introspection is answered from respguard's policy and changes are refused", func(t *testing.T) {
		rc := tp.raw(t)
		rc.send("AUTH operator op-pass\r\nACL WHOAMI\r\nACL USERS\r\nACL DRYRUN appuser GET secret:1\r\nACL SETUSER evil on\r\n")
		expectLines(t, rc, "+OK", "$8", "operator", "*3", "$7", "appuser", "$7", "default", "$8", "operator",
			"$57", "This user has no permissions to access the 'secret:1' key",
			"-ERR ACL SETUSER is not available through respguard: users and rules come from the proxy's policy configuration")
	})
	t.Run("inside MULTI, ACL introspection is queued and a refused change aborts the transaction", func(t *testing.T) {
		rc := tp.raw(t)
		rc.send("AUTH operator op-pass\r\nMULTI\r\nACL WHOAMI\r\nSET cache:acltx 1\r\nEXEC\r\n" +
			"MULTI\r\nSET cache:acltx 2\r\nACL DELUSER appuser\r\nEXEC\r\nGET cache:acltx\r\n")
		expectLines(t, rc, "+OK", "+OK", "+QUEUED", "+QUEUED", "*2", "$8", "operator", "+OK",
			"+OK", "+QUEUED",
			"-ERR ACL DELUSER is not available through respguard: users and rules come from the proxy's policy configuration",
			"-EXECABORT Transaction discarded because of previous errors.", "$1", "1")
	})
	t.Run("renamed commands exist only under their new name", func(t *testing.T) {
		rc := tp.raw(t)
		rc.send("AUTH operator op-pass\r\nFLUSHALL\r\nCONFIG GET maxmemory\r\nCONFIG-b83f GET maxmemory\r\n")
		expectLines(t, rc, "+OK",
			"-ERR unknown command 'FLUSHALL', with args beginning with: ",
			"-ERR unknown command 'CONFIG', with args beginning with: 'GET' 'maxmemory' ",
			"*2", "$9", "maxmemory")
	})
	t.Run("a transaction with a denied command aborts at EXEC and nothing queued runs", func(t *testing.T) {
		rc := tp.raw(t)
		rc.send("AUTH appuser S3cret-pass\r\nMULTI\r\nSET cache:tx 1\r\nSET other:tx 1\r\nEXEC\r\nGET cache:tx\r\n")
		expectLines(t, rc, "+OK", "+OK", "+QUEUED",
			"-NOPERM this user has no permissions to access one of the keys used as arguments",
			"-EXECABORT Transaction discarded because of previous errors.", "$-1")
	})
}

func TestPolicyAuditModeForwardsAndCounts(t *testing.T) {
	tp := startProxyWith(t, redistest.Start(t), nil, Options{Policy: appPolicy(t, policy.ModeAudit)})
	ctx := ctxT(t)
	c := tp.client(t, 2, func(o *redis.Options) { o.Username, o.Password = "appuser", "S3cret-pass" })
	if err := c.Set(ctx, "other:1", "audited", 0).Err(); err != nil {
		t.Fatalf("audit mode refused: %v", err)
	}
	if v := tp.direct(t).Get(ctx, "other:1").Val(); v != "audited" {
		t.Fatalf("value = %q", v)
	}
}

func TestPolicyHotReload(t *testing.T) {
	tp := startProxyWith(t, redistest.Start(t), nil, Options{Policy: appPolicy(t, "")})
	ctx := ctxT(t)
	t.Run("the next command is judged by the new rules, with no reply lost under load", func(t *testing.T) {
		c := tp.client(t, 2, func(o *redis.Options) { o.Username, o.Password = "appuser", "S3cret-pass"; o.PoolSize = 4 })
		var wg sync.WaitGroup
		var bad atomic.Int64
		stop := make(chan struct{})
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					val := fmt.Sprintf("%d-%d", w, i)
					if err := c.Set(ctx, fmt.Sprintf("cache:w%d", w), val, 0).Err(); err != nil {
						bad.Add(1)
					}
					if got := c.Get(ctx, fmt.Sprintf("cache:w%d", w)).Val(); got != val {
						bad.Add(1)
					}
				}
			}()
		}
		for i := range 20 { // reload repeatedly while the workers run
			cfg := policy.Config{Users: map[string]string{
				"default": "off",
				"appuser": fmt.Sprintf("on >S3cret-pass ~cache:* +get +set +del +ping ~gen:%d", i),
			}}
			tp.Server.SetPolicy(newPolicy(t, cfg))
		}
		close(stop)
		wg.Wait()
		if bad.Load() != 0 {
			t.Fatalf("%d commands failed or read the wrong value during reloads", bad.Load())
		}
		tp.Server.SetPolicy(newPolicy(t, policy.Config{Users: map[string]string{
			"default": "off", "appuser": "on >S3cret-pass ~cache:* +get",
		}}))
		if err := c.Set(ctx, "cache:1", "x", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
			t.Fatalf("SET after reload: %v", err)
		}
	})
	t.Run("a client whose user is switched off is disconnected", func(t *testing.T) {
		rc := tp.raw(t)
		rc.send("AUTH appuser S3cret-pass\r\n")
		expectLines(t, rc, "+OK")
		tp.Server.SetPolicy(newPolicy(t, policy.Config{Users: map[string]string{"default": "off", "appuser": "off >S3cret-pass"}}))
		rc.expectClosed()
	})
}

// cmdstat returns Redis's call count for a command.
func cmdstat(t testing.TB, tp *testProxy, name string) int {
	info := tp.direct(t).Info(ctxT(t), "commandstats").Val()
	i := strings.Index(info, "cmdstat_"+name+":calls=")
	if i < 0 {
		return 0
	}
	var n int
	fmt.Sscanf(info[i+len("cmdstat_"+name+":calls="):], "%d", &n)
	return n
}
