package policy

// RespguardCommand is the name of respguard's own command, RESPGUARD
// CLIENTS|POOLS|UPSTREAMS|CONFIG|SLOWLOG|BIGKEYS|HOTKEYS|RELOAD|HELP: the
// proxy answers it and never forwards it. Every command table holds it (see
// NewCommands), so ACL rules address it as any Redis command:
// "+respguard", "+respguard|clients", "+@admin".
const RespguardCommand = "respguard"

// respguardCommand describes RESPGUARD as COMMAND would. Every subcommand
// but HELP is @admin @dangerous, as Redis's CLIENT LIST, CONFIG GET and
// SLOWLOG GET are: they show client addresses, key names and the
// configuration, or (RELOAD) change what is in force. So only users granted
// @admin, @dangerous, +respguard or a subcommand may run them; an
// application user of "+@all -@admin" or "+@read +@write" may not.
func respguardCommand() CommandInfo {
	admin := func(name string, arity int) CommandInfo {
		return CommandInfo{Name: "respguard|" + name, Arity: arity,
			Flags:      []string{"admin", "noscript", "loading", "stale"},
			Categories: []string{"admin", "slow", "dangerous"}}
	}
	return CommandInfo{Name: RespguardCommand, Arity: -2, Categories: []string{"slow"},
		Subcommands: []CommandInfo{
			admin("bigkeys", 2),
			admin("clients", 2),
			admin("config", -2),
			{Name: "respguard|help", Arity: 2, Flags: []string{"loading", "stale"}, Categories: []string{"slow"}},
			admin("hotkeys", 2),
			admin("pools", 2),
			admin("reload", 2),
			admin("slowlog", -2),
			admin("upstreams", 2),
		}}
}

// RespguardUnknownSubcommandText is Redis's error for an unknown
// subcommand, for RESPGUARD (sub is the subcommand as sent).
func RespguardUnknownSubcommandText(sub []byte) string {
	if len(sub) > 128 {
		sub = sub[:128]
	}
	return "ERR unknown subcommand '" + string(sub) + "'. Try RESPGUARD HELP."
}

// respguardUnknownSub denies an unknown RESPGUARD subcommand with Redis's
// syntax error, whoever runs it: every subcommand is respguard's, so what
// the table lacks exists nowhere (Redis, too, says so before its ACL check).
func respguardUnknownSub(cmds *Commands, args [][]byte) (Decision, bool) {
	if len(args) < 2 || !equalFold(args[0], RespguardCommand) || cmds.lookupName(cmds.byName, args[0]) == nil {
		return Decision{}, false
	}
	return Decision{Err: RespguardUnknownSubcommandText(args[1]), Reason: ReasonArity}, true
}

// withRespguard returns infos with RESPGUARD added, unless an entry of that
// name is there already (a table rendered from an earlier one).
func withRespguard(infos []CommandInfo) []CommandInfo {
	for i := range infos {
		if infos[i].Name == RespguardCommand {
			return infos
		}
	}
	return append(infos[:len(infos):len(infos)], respguardCommand())
}
