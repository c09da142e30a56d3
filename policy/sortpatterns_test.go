package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestSortPatternsMatchRedis runs SORT and SORT_RO with BY and GET patterns
// as each test user on a real Redis and compares its reply with respguard's
// decision: Redis's pattern refusal (and NOPERM) texts must be respguard's
// denial texts, and whatever Redis runs or refuses for another reason
// (syntax, integers) respguard must forward.
func TestSortPatternsMatchRedis(t *testing.T) {
	users := append(loadUsers(t),
		testUser{"readall", "on >x %R~* +@all"},
		testUser{"qmark", "on >x ~? ~cache:* +@all"},
		testUser{"writeall", "on >x %W~* %R~cache:* +@all"},
		testUser{"rwall", "on >x %RW~* +@all"})
	srv, rdb := startOracle(t, users)
	for _, key := range []string{"cache:l", "ro:1", "pub:1", "s:1", "rw:1"} {
		rdb.RPush(t.Context(), key, 3, 1, 2)
	}
	p := policyFor(t, users, nil)
	corpus := []string{
		"SORT cache:l BY nosort GET secret_*", "SORT cache:l BY w_*", "SORT cache:l BY nosort",
		"SORT cache:l GET #", "SORT cache:l LIMIT 0 x GET #", "SORT cache:l LIMIT -0 1 GET #",
		"SORT cache:l LIMIT 0 01 GET #", "SORT cache:l LIMIT 0 9223372036854775808 GET #",
		"SORT cache:l LIMIT -9223372036854775808 1 GET #",
		"SORT cache:l BOGUS GET #", "SORT cache:l GET # BOGUS", "SORT_RO cache:l BY w_*",
		"SORT cache:l BY nosort BY w_*", "SORT cache:l STORE cache:x GET #", "SORT_RO cache:l STORE x GET #",
		"SORT ro:1 GET #", "SORT pub:1 BY w_*", "SORT s:1 GET # LIMIT 0 1", "SORT rw:1 BY rw:*",
		"SORT cache:l LIMIT 0 1 ALPHA DESC BY w_* GET #", "SORT cache:l BY", "SORT cache:l GET",
		"SORT_RO rw:1 GET # GET rw:*", "SORT cache:l ASC BY nosort LIMIT 0 2",
	}
	compared := map[string]int{}
	for _, u := range users {
		user := p.User(u.name)
		if !user.Enabled() {
			continue
		}
		password := strings.TrimPrefix(strings.Fields(u.rules)[1], ">")
		client := redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: 2, Username: u.name, Password: password, PoolSize: 1})
		for _, line := range corpus {
			args := strings.Fields(line)
			err := client.Do(t.Context(), toAny(args...)...).Err()
			d := p.Check(user, toBytes(args))
			var rerr redis.Error
			denied := errors.As(err, &rerr) && (strings.HasPrefix(rerr.Error(), "NOPERM") || strings.Contains(rerr.Error(), "insufficient ACL"))
			switch {
			case denied && d.Err != rerr.Error():
				t.Errorf("user %s: %s: respguard %q, redis %q", u.name, line, d.Err, rerr.Error())
			case !denied && !d.Allowed:
				t.Errorf("user %s: %s: respguard denies (%q), redis replied %v", u.name, line, d.Err, err)
			}
			if denied {
				compared[strings.Fields(rerr.Error())[1]]++
			} else {
				compared["allowed"]++
			}
		}
		client.Close()
	}
	t.Logf("outcomes compared: %v", compared)
	if compared["BY"] < 5 || compared["GET"] < 10 || compared["allowed"] < 20 {
		t.Errorf("corpus too one-sided: %v", compared)
	}
}
