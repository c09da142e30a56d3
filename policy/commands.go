package policy

//go:generate go run ./internal/gencommands -o commands_table.go

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// CommandInfo describes one command or subcommand the way Redis 7's COMMAND
// reply does. Names are lower case; a subcommand's Name is its full name,
// "config|get".
type CommandInfo struct {
	Name        string
	Arity       int      // > 0: exact argument count; < 0: at least -Arity
	Flags       []string // command flags as COMMAND reports them ("write", "no_auth", ...)
	Categories  []string // ACL categories without the '@' ("read", "string", ...)
	KeySpecs    []KeySpec
	Subcommands []CommandInfo
}

// Commands is an immutable table of commands, built by [NewCommands],
// [ParseCommandReply] or [BuiltinCommands]. It is safe for concurrent use.
type Commands struct {
	byName     map[string]*command // top-level commands by lower-case name
	all        []*command          // every command and subcommand, indexed by id
	categories []string            // category names; bit i of a category mask is categories[i]
	catIndex   map[string]int
}

// command is the derived, lookup-ready form of a CommandInfo.
type command struct {
	info       *CommandInfo
	id         int
	categories uint64 // bit set over Commands.categories
	noAuth     bool   // "no_auth": ACL command rules do not apply (AUTH, HELLO)
	readOnly   bool   // "readonly": may be served by a replica
	keyProc    keyProc
	runsScript bool // EVAL, FCALL and their variants (scripts.go)
	channels   channelKind
	parent     *command
	subs       map[string]*command // by subcommand name without the parent prefix
}

// redisCategories lists Redis 7.0's ACL categories in ACL CAT order.
var redisCategories = []string{
	"keyspace", "read", "write", "set", "sortedset", "list", "hash", "string",
	"bitmap", "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow",
	"blocking", "dangerous", "connection", "transaction", "scripting",
}

// maxNameLen bounds the command names looked up without allocating; longer
// names are unknown.
const maxNameLen = 64

// NewCommands indexes infos, plus respguard's own command (RESPGUARD) if
// infos lacks it. It fails on duplicate names or on more than 64 distinct
// ACL categories.
func NewCommands(infos []CommandInfo) (*Commands, error) {
	infos = withRespguard(infos)
	c := &Commands{byName: make(map[string]*command, len(infos)), catIndex: map[string]int{}}
	for _, name := range redisCategories {
		c.addCategory(name)
	}
	for i := range infos {
		cmd, err := c.add(&infos[i], nil)
		if err != nil {
			return nil, err
		}
		if _, dup := c.byName[cmd.info.Name]; dup {
			return nil, fmt.Errorf("policy: duplicate command %q", cmd.info.Name)
		}
		c.byName[cmd.info.Name] = cmd
	}
	if len(c.categories) > 64 {
		return nil, fmt.Errorf("policy: %d ACL categories, at most 64 supported", len(c.categories))
	}
	return c, nil
}

func (c *Commands) addCategory(name string) int {
	if i, ok := c.catIndex[name]; ok {
		return i
	}
	c.categories = append(c.categories, name)
	c.catIndex[name] = len(c.categories) - 1
	return len(c.categories) - 1
}

func (c *Commands) add(info *CommandInfo, parent *command) (*command, error) {
	if info.Name == "" || len(info.Name) > 2*maxNameLen {
		return nil, fmt.Errorf("policy: bad command name %q", info.Name)
	}
	cmd := &command{info: info, id: len(c.all), parent: parent}
	c.all = append(c.all, cmd)
	for _, cat := range info.Categories {
		cmd.categories |= 1 << (c.addCategory(cat) & 63)
	}
	for _, f := range info.Flags {
		cmd.noAuth = cmd.noAuth || f == "no_auth"
		cmd.readOnly = cmd.readOnly || f == "readonly"
	}
	cmd.keyProc = keyProcFor(info.Name)
	cmd.runsScript = runsScriptName(info.Name)
	cmd.channels = channelKindFor(info.Name)
	if len(info.Subcommands) > 0 {
		cmd.subs = make(map[string]*command, len(info.Subcommands))
	}
	for i := range info.Subcommands {
		sub, err := c.add(&info.Subcommands[i], cmd)
		if err != nil {
			return nil, err
		}
		_, short, _ := strings.Cut(sub.info.Name, "|")
		cmd.subs[short] = sub
	}
	return cmd, nil
}

var builtin = sync.OnceValue(func() *Commands {
	c, err := NewCommands(builtinCommands)
	if err != nil {
		panic("bug: built-in command table: " + err.Error())
	}
	return c
})

// BuiltinCommands returns the table generated from Redis 7.0.15 (see
// commands_table.go). The result is shared and must not be modified.
func BuiltinCommands() *Commands { return builtin() }

// Info returns the command that args would run (the subcommand for container
// commands such as CONFIG GET), or nil if the table does not know it. The
// result is shared and must not be modified.
func (c *Commands) Info(args [][]byte) *CommandInfo {
	if cmd := c.lookup(args); cmd != nil {
		return cmd.info
	}
	return nil
}

// ReadOnly reports whether the command args would run is flagged
// "readonly" (it only reads keys, so a replica may serve it).
func (c *Commands) ReadOnly(args [][]byte) bool {
	cmd := c.lookup(args)
	return cmd != nil && cmd.readOnly
}

// IsKnown reports whether name (any case) is a top-level command in the table.
func (c *Commands) IsKnown(name []byte) bool {
	return c.lookupName(c.byName, name) != nil
}

// Len returns the number of top-level commands.
func (c *Commands) Len() int { return len(c.byName) }

// Categories returns the ACL category names, in Redis's ACL CAT order.
func (c *Commands) Categories() []string { return append([]string(nil), c.categories...) }

// CategoryCommands returns the full names of the commands and subcommands in
// category (sorted), and false if there is no such category.
func (c *Commands) CategoryCommands(category string) ([]string, bool) {
	i, ok := c.catIndex[strings.ToLower(category)]
	if !ok {
		return nil, false
	}
	var names []string
	for _, cmd := range c.all {
		if cmd.categories&(1<<i) != 0 {
			names = append(names, cmd.info.Name)
		}
	}
	sort.Strings(names)
	return names, true
}

// lookup finds the command args runs: the subcommand when args[0] is a
// container and there is a second argument. It returns nil when unknown,
// including an unknown subcommand of a known container.
func (c *Commands) lookup(args [][]byte) *command {
	if len(args) == 0 {
		return nil
	}
	cmd := c.lookupName(c.byName, args[0])
	if cmd == nil || cmd.subs == nil || len(args) < 2 {
		return cmd
	}
	return c.lookupName(cmd.subs, args[1])
}

// lookupName looks name up case-insensitively without allocating.
func (c *Commands) lookupName(m map[string]*command, name []byte) *command {
	if len(name) > maxNameLen {
		return nil
	}
	var buf [maxNameLen]byte
	return m[string(lowerInto(buf[:0], name))]
}

// lookupFullName finds "cmd" or "cmd|sub" (any case).
func (c *Commands) lookupFullName(name string) *command {
	name = strings.ToLower(name)
	top, sub, hasSub := strings.Cut(name, "|")
	cmd := c.byName[top]
	if !hasSub || cmd == nil {
		return cmd
	}
	return cmd.subs[sub]
}

// lowerInto appends the ASCII lower-case form of s to dst.
func lowerInto(dst, s []byte) []byte {
	for _, b := range s {
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		dst = append(dst, b)
	}
	return dst
}

// arityOK reports whether argc arguments (command name included) satisfy arity.
func arityOK(arity, argc int) bool {
	if arity >= 0 {
		return argc == arity
	}
	return argc >= -arity
}

// List returns the top-level commands (with their subcommands), sorted by
// name. The result is shared and must not be modified.
func (c *Commands) List() []CommandInfo {
	var list []CommandInfo
	for _, cmd := range c.all {
		if cmd.parent == nil {
			list = append(list, *cmd.info)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return list
}
