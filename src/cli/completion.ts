import { collectStdout } from './output';

/**
 * Shell completion. The script a shell loads is small and fixed; every TAB asks the CLI itself
 * (`bulkhead __complete WORDS…`) what may come next, so a verb, action or flag added later completes
 * without regenerating anything. Flags are read from the verb's own --help, the one place they are
 * already written down.
 */

export const COMPLETION_HELP = `Usage: bulkhead completion bash|zsh

Prints a completion script for the shell. Verbs, their actions and flags complete; a flag's value
(a file, a directory) completes as a path.
  bash:  source <(bulkhead completion bash)          (or save it in /etc/bash_completion.d/bulkhead)
  zsh:   source <(bulkhead completion zsh)           (uses bashcompinit)`;

const BASH = `# bash completion for bulkhead (bulkhead completion bash)
_bulkhead() {
  local cur=\${COMP_WORDS[COMP_CWORD]} words
  local IFS=$'\\n'
  words=$("\${COMP_WORDS[0]}" __complete "\${COMP_WORDS[@]:1:COMP_CWORD-1}" 2>/dev/null) || return 0
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _bulkhead bulkhead
`;

export function completionScript(shell: string): string | null {
  if (shell === 'bash') return BASH;
  if (shell === 'zsh') return `#compdef bulkhead\n# zsh completion for bulkhead (bulkhead completion zsh)\nautoload -U +X bashcompinit && bashcompinit\n${BASH}`;
  return null;
}

interface Registry {
  verbs: string[];
  actionsOf(verb: string): string[];
  helpOf(words: string[]): Promise<string>;
}

/** What may follow `words` (the words already typed after `bulkhead`). Empty: complete a path. */
export async function complete(words: string[], registry: Registry = defaultRegistry()): Promise<string[]> {
  const [verb, ...more] = words.filter((w) => w !== '--json');
  if (verb === undefined) return [...registry.verbs, 'help', 'completion', '--version', '--help', '--json'];
  if (verb === 'help') return more.length === 0 ? registry.verbs : registry.actionsOf(more[0]!);
  if (verb === 'completion') return more.length === 0 ? ['bash', 'zsh'] : [];
  if (!registry.verbs.includes(verb)) return [];
  const actions = registry.actionsOf(verb);
  if (actions.length > 0 && more.length === 0) return [...actions, '--help'];
  const action = actions.includes(more[0] ?? '') ? [more[0]!] : [];
  const help = await registry.helpOf([verb, ...action]);
  const previous = words[words.length - 1] ?? '';
  // After a flag that takes a value (`--config FILE`), nothing: the shell completes a path.
  if (new RegExp(`(^|\\s)${previous.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[ =][A-Z]`, 'm').test(help)) return [];
  return [...new Set([...(help.match(/--[a-z][a-z0-9-]*/g) ?? []), '--json', '--help'])];
}

function defaultRegistry(): Registry {
  const main = require('./main') as typeof import('./main');
  return {
    verbs: Object.keys(main.VERBS),
    actionsOf: main.actionsOf,
    async helpOf(words) {
      const collecting = collectStdout();
      try {
        await main.VERBS[words[0]!]!.load()([...words.slice(1), '--help']);
      } catch {
        // A verb that cannot print its help completes nothing.
      }
      return collecting.finish();
    },
  };
}
