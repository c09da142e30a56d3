package proxy

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Every integer argument respguard reads itself is accepted exactly when
// Redis's string2ll accepts it (no '+', no leading zeros, no "-0", no
// spaces, within int64), with each command's own error text. A probe after
// the command shows the state it left: the db (GET whichdb), the protocol
// (HGETALL of a missing key: *0 in RESP2, %0 in RESP3).
func TestIntegerArgumentsAreReadAsRedisReadsThem(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	for db := range 2 {
		c := redis.NewClient(&redis.Options{Addr: tp.Redis.Addr, DB: db})
		t.Cleanup(func() { c.Close() })
		if err := c.Set(ctx, "whichdb", db, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var scripts []string
	for _, n := range []string{"01", "+1", "-0", "-1", "00", "1 ", "4294967297", "2147483648", "-2147483649", "9223372036854775808", "16"} {
		scripts = append(scripts, "SELECT \""+n+"\"\r\nGET whichdb\r\n")
	}
	for _, n := range []string{"03", "+3", "002", "-2", "4", "\" 3\"", "2147483648", "99999999999999999999"} {
		scripts = append(scripts, "HELLO "+n+"\r\nHGETALL nosuchkey\r\n")
	}
	for _, n := range []string{"+10", "010", "-1", "\" 5\"", "9223372036854775808"} {
		scripts = append(scripts, "CLIENT PAUSE "+n+"\r\nPING\r\n")
	}
	for _, n := range []string{"+5", "05", "-0", "-1", "0"} {
		scripts = append(scripts,
			"CLIENT UNBLOCK "+n+"\r\nPING\r\n",
			"CLIENT KILL ID "+n+"\r\nPING\r\n",
			"CLIENT LIST ID "+n+"\r\nPING\r\n",
			"CLIENT TRACKING ON REDIRECT "+n+"\r\nPING\r\n")
	}
	scripts = append(scripts, "CLIENT KILL MAXAGE +5\r\nPING\r\n")
	for _, script := range scripts {
		t.Run(strings.ReplaceAll(strings.TrimSuffix(script, "\r\n"), "\r\n", "; "), func(t *testing.T) {
			sameAsRedis(t, tp, script, 2)
		})
	}
}
