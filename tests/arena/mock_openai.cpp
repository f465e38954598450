// The eval tests' OpenAI-compatible mock server, compiled into the arena tests
// too: live prompts and `kaival arena answer` are tested against it.
#include "../eval/mock_server.cpp"
