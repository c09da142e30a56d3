package cluster

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/respguard/respguard/pool/redistest"
)

// crc16Bitwise is CRC-16/XMODEM computed bit by bit, the reference for the
// table.
func crc16Bitwise(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

func TestCRC16TableMatchesTheBitwiseDefinition(t *testing.T) {
	for i := range 256 {
		if got, want := crc16Table[i], crc16Bitwise([]byte{byte(i)}); got != want {
			t.Fatalf("table[%d] = %#04x, want %#04x", i, got, want)
		}
	}
	if got := crc16([]byte("123456789")); got != 0x31c3 { // the XMODEM check value
		t.Fatalf(`crc16("123456789") = %#04x, want 0x31c3`, got)
	}
}

// slotCases are keys whose slot is checked against Redis: hash tag edge
// cases first.
func slotCases() []string {
	keys := []string{
		"", "a", "foo", "{}", "{a", "a}", "}{", "{a}", "a{}{b}", "{{a}}", "{}a", "a{b}c",
		"{user1000}.following", "{user1000}.followers", "foo{}{bar}", "foo{{bar}}zap",
		"foo{bar}{zap}", "{ }", "\x00{\xff}", "{\r\n}", "日本{語}",
	}
	for i := range 500 {
		keys = append(keys, "key:"+strconv.Itoa(i), "{tag"+strconv.Itoa(i%7)+"}:"+strconv.Itoa(i))
	}
	return keys
}

func TestSlotMatchesRedisClusterKeyslot(t *testing.T) {
	srv := redistest.Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	for _, key := range slotCases() {
		reply, err := redistest.Do(srv.Addr, "CLUSTER", "KEYSLOT", key)
		if err != nil {
			t.Fatal(err)
		}
		if got := strconv.Itoa(Slot([]byte(key))); got != reply {
			t.Errorf("Slot(%q) = %s, Redis says %s", key, got, reply)
		}
	}
}

// FuzzSlot checks Slot against a reference written from Redis's
// keyHashSlot, and hash tag equivalence. Seeds: testdata/fuzz/FuzzSlot.
func FuzzSlot(f *testing.F) {
	f.Fuzz(func(t *testing.T, key []byte) {
		s := Slot(key)
		if s < 0 || s >= Slots {
			t.Fatalf("Slot(%q) = %d out of range", key, s)
		}
		tag := hashTag(key)
		if want := int(crc16Bitwise(tag) % Slots); s != want {
			t.Fatalf("Slot(%q) = %d, reference says %d (hashing %q)", key, s, want, tag)
		}
		if len(key) > 0 && bytes.IndexByte(key, '}') < 0 {
			tagged := append(append([]byte("{"), key...), "}x"...)
			if Slot(tagged) != s {
				t.Fatalf("Slot(%q) = %d, but Slot(%q) = %d", tagged, Slot(tagged), key, s)
			}
		}
	})
}

// hashTag is the part of key Redis hashes, written as Redis's keyHashSlot
// does it, with indexes.
func hashTag(key []byte) []byte {
	s := -1
	for i, c := range key {
		if c == '{' {
			s = i
			break
		}
	}
	if s < 0 {
		return key
	}
	for e := s + 1; e < len(key); e++ {
		if key[e] == '}' {
			if e == s+1 {
				return key
			}
			return key[s+1 : e]
		}
	}
	return key
}

func BenchmarkSlot(b *testing.B) {
	key := []byte("{user1000}.following")
	b.ReportAllocs()
	for b.Loop() {
		Slot(key)
	}
}
