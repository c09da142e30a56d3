package policy

import (
	"fmt"
	"strings"
)

// ParseCommandReply builds a command table from the reply to Redis 7's
// COMMAND (or COMMAND INFO) as go-redis returns it from
// rdb.Do(ctx, "COMMAND").Slice(): one []any per command holding name,
// arity, flags, first/last/step, ACL categories, tips, key specs and
// subcommands. Key specs may be RESP3 maps (map[any]any) or RESP2 flat
// arrays; strings may be string or []byte. Entries of older servers without
// key specs or categories are accepted (those commands then have no keys or
// categories).
func ParseCommandReply(reply []any) (*Commands, error) {
	infos, err := parseCommandInfos(reply)
	if err != nil {
		return nil, err
	}
	return NewCommands(infos)
}

func parseCommandInfos(reply []any) ([]CommandInfo, error) {
	var infos []CommandInfo
	for i, entry := range reply {
		if entry == nil {
			continue // COMMAND INFO of an unknown name
		}
		info, err := parseCommandInfo(entry)
		if err != nil {
			return nil, fmt.Errorf("policy: COMMAND reply entry %d: %w", i, err)
		}
		infos = append(infos, info)
	}
	return infos, nil
}

func parseCommandInfo(entry any) (CommandInfo, error) {
	fields, ok := entry.([]any)
	if !ok || len(fields) < 6 {
		return CommandInfo{}, fmt.Errorf("want an array of at least 6 fields, got %T", entry)
	}
	name, ok1 := asString(fields[0])
	arity, ok2 := asInt(fields[1])
	if !ok1 || !ok2 || name == "" {
		return CommandInfo{}, fmt.Errorf("bad name or arity: %v %v", fields[0], fields[1])
	}
	info := CommandInfo{Name: strings.ToLower(name), Arity: arity, Flags: asStrings(fields[2])}
	if len(fields) > 6 {
		for _, c := range asStrings(fields[6]) {
			info.Categories = append(info.Categories, strings.ToLower(strings.TrimPrefix(c, "@")))
		}
	}
	var err error
	if len(fields) > 8 {
		if info.KeySpecs, err = parseKeySpecs(fields[8]); err != nil {
			return CommandInfo{}, fmt.Errorf("%s: %w", info.Name, err)
		}
	}
	if len(fields) > 9 {
		subs, _ := fields[9].([]any)
		if info.Subcommands, err = parseCommandInfos(subs); err != nil {
			return CommandInfo{}, fmt.Errorf("%s: %w", info.Name, err)
		}
	}
	return info, nil
}

func parseKeySpecs(v any) ([]KeySpec, error) {
	list, _ := v.([]any)
	var specs []KeySpec
	for _, item := range list {
		m := asMap(item)
		if m == nil {
			return nil, fmt.Errorf("key spec is %T, want a map", item)
		}
		var spec KeySpec
		for _, f := range asStrings(m["flags"]) {
			spec.Flags |= keyFlagNames[f]
		}
		spec.BeginSearch = parseBeginSearch(asMap(m["begin_search"]))
		spec.FindKeys = parseFindKeys(asMap(m["find_keys"]))
		specs = append(specs, spec)
	}
	return specs, nil
}

func parseBeginSearch(m map[string]any) BeginSearch {
	typ, _ := asString(m["type"])
	spec := asMap(m["spec"])
	switch typ {
	case "index":
		i, _ := asInt(spec["index"])
		return BeginSearch{Type: SearchIndex, Index: i}
	case "keyword":
		kw, _ := asString(spec["keyword"])
		from, _ := asInt(spec["startfrom"])
		return BeginSearch{Type: SearchKeyword, Keyword: kw, StartFrom: from}
	}
	return BeginSearch{}
}

func parseFindKeys(m map[string]any) FindKeys {
	typ, _ := asString(m["type"])
	spec := asMap(m["spec"])
	get := func(k string) int { n, _ := asInt(spec[k]); return n }
	switch typ {
	case "range":
		return FindKeys{Type: FindRange, LastKey: get("lastkey"), KeyStep: get("keystep"), Limit: get("limit")}
	case "keynum":
		return FindKeys{Type: FindKeynum, KeyNumIdx: get("keynumidx"), FirstKey: get("firstkey"), KeyStep: get("keystep")}
	}
	return FindKeys{}
}

// asMap accepts a RESP3 map or a RESP2 flat array of key-value pairs.
func asMap(v any) map[string]any {
	out := map[string]any{}
	switch m := v.(type) {
	case map[any]any:
		for k, val := range m {
			if ks, ok := asString(k); ok {
				out[ks] = val
			}
		}
	case map[string]any:
		return m
	case []any:
		for i := 0; i+1 < len(m); i += 2 {
			if ks, ok := asString(m[i]); ok {
				out[ks] = m[i+1]
			}
		}
	default:
		return nil
	}
	return out
}

func asString(v any) (string, bool) {
	switch s := v.(type) {
	case string:
		return s, true
	case []byte:
		return string(s), true
	}
	return "", false
}

func asInt(v any) (int, bool) {
	switch n := v.(type) {
	case int64:
		return int(n), true
	case int:
		return n, true
	}
	return 0, false
}

// asStrings accepts an array or a RESP3 set (as go-redis returns it).
func asStrings(v any) []string {
	var out []string
	switch list := v.(type) {
	case []any:
		for _, item := range list {
			if s, ok := asString(item); ok {
				out = append(out, s)
			}
		}
	case map[any]any: // a set some clients return as a map to struct{} or bool
		for k := range list {
			if s, ok := asString(k); ok {
				out = append(out, s)
			}
		}
	case []string:
		out = append(out, list...)
	}
	return out
}
