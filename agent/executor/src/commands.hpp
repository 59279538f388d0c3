// The subcommands. Each takes the arguments after its name and returns the process exit code;
// UsageError escapes to main(), which prints it and exits 2.
#pragma once

#include <string>
#include <vector>

namespace spawn {

using Args = std::vector<std::string>;

int cmd_probe(const Args& args);
int cmd_health(const Args& args);
int cmd_sample(const Args& args);
int cmd_run(const Args& args);
int cmd_trace(const Args& args);

// Reads `--name value` or `--name=value` at args[i]; advances i past the value. Returns false
// when args[i] is not this flag.
bool take_value(const Args& args, size_t& i, const std::string& name, std::string& value);

}  // namespace spawn
