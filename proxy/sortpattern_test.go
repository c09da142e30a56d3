package proxy

import (
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/pool/redistest"
)

// TestSortPatternsThroughRespguard: a ~cache:* user gets Redis's own
// refusal for SORT BY/GET patterns through respguard, not the values of
// keys outside its patterns; a user with read access to every key gets
// Redis's reply.
func TestSortPatternsThroughRespguard(t *testing.T) {
	rs := redistest.Start(t)
	users := map[string]string{"cache": "~cache:* +@all", "reader": "%R~* %W~cache:* +@all"}
	cfg := policy.Config{Users: map[string]string{"default": "on nopass ~* &* +@all"}}
	admin := redis.NewClient(&redis.Options{Addr: rs.Addr, Protocol: 2, DisableIdentity: true})
	defer admin.Close()
	ctx := ctxT(t)
	for name, rules := range users {
		cfg.Users[name] = "on >pw " + rules
		admin.Do(ctx, append([]any{"ACL", "SETUSER", name, "on", ">pw"}, words(rules)...)...)
	}
	admin.RPush(ctx, "cache:l", 1, 2)
	admin.Set(ctx, "secret_1", "one", 0)
	admin.Set(ctx, "w_1", "5", 0)
	tp := startProxyWith(t, rs, nil, Options{Policy: newPolicy(t, cfg)})
	for name := range users {
		direct := redis.NewClient(&redis.Options{Addr: rs.Addr, Protocol: 2, Username: name, Password: "pw", DisableIdentity: true})
		proxied := tp.client(t, 3, func(o *redis.Options) { o.Username, o.Password = name, "pw" })
		for _, line := range []string{
			"SORT cache:l BY nosort GET secret_*", "SORT cache:l BY w_*", "SORT_RO cache:l GET # GET secret_*",
			"SORT cache:l BY nosort", "SORT cache:l BY w_* STORE cache:sorted",
		} {
			want := fmt.Sprint(direct.Do(ctx, words(line)...).Result())
			if got := fmt.Sprint(proxied.Do(ctx, words(line)...).Result()); got != want {
				t.Errorf("user %s: %s: respguard %s, Redis %s", name, line, got, want)
			}
		}
		direct.Close()
	}
}
