package policy

// KeyFlags are a key spec's flags (Redis 7's CMD_KEY_*).
type KeyFlags uint16

// Key spec flags. Only Access (read) and Insert, Delete, Update (write)
// decide which %R~ / %W~ patterns a key needs; NotKey specs are skipped.
const (
	KeyRO KeyFlags = 1 << iota
	KeyRW
	KeyOW
	KeyRM
	KeyAccess
	KeyUpdate
	KeyInsert
	KeyDelete
	KeyNotKey
	KeyIncomplete
	KeyVariableFlags
)

// keyFlagNames maps COMMAND's key spec flag names to KeyFlags.
var keyFlagNames = map[string]KeyFlags{
	"RO": KeyRO, "RW": KeyRW, "OW": KeyOW, "RM": KeyRM,
	"access": KeyAccess, "update": KeyUpdate, "insert": KeyInsert, "delete": KeyDelete,
	"not_key": KeyNotKey, "incomplete": KeyIncomplete, "variable_flags": KeyVariableFlags,
}

// SearchType says how a key spec finds its first key.
type SearchType uint8

// Begin-search types. The zero value is SearchUnknown.
const (
	SearchUnknown SearchType = iota
	SearchIndex              // the first key is at BeginSearch.Index
	SearchKeyword            // the first key follows BeginSearch.Keyword
)

// BeginSearch is a key spec's begin_search part.
type BeginSearch struct {
	Type      SearchType
	Index     int    // SearchIndex: argument index of the first key
	Keyword   string // SearchKeyword: upper-case keyword preceding the first key
	StartFrom int    // SearchKeyword: where the search starts; negative counts from the end, searching backwards
}

// FindType says how a key spec finds the keys after the first.
type FindType uint8

// Find-keys types. The zero value is FindUnknown.
const (
	FindUnknown FindType = iota
	FindRange            // keys up to LastKey, every KeyStep
	FindKeynum           // a count argument says how many keys follow
)

// FindKeys is a key spec's find_keys part.
type FindKeys struct {
	Type      FindType
	LastKey   int // FindRange: index of the last key relative to the first; -1 means the end
	KeyStep   int // both: distance between keys
	Limit     int // FindRange with LastKey -1: only 1/Limit of the remaining arguments are keys
	KeyNumIdx int // FindKeynum: index of the count relative to the first key position
	FirstKey  int // FindKeynum: index of the first key relative to the first key position
}

// KeySpec is one of a command's key specifications.
type KeySpec struct {
	Flags       KeyFlags
	BeginSearch BeginSearch
	FindKeys    FindKeys
}
