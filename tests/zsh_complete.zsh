# SPDX-License-Identifier: LGPL-2.1-or-later
# Complete a command line in a real interactive zsh and print what it offers, one match a
# line:  zsh -f zsh_complete.zsh 'podmgr start '   (FPATH_FIRST=DIR puts DIR first in fpath)
#
# An interactive zsh runs on a pseudo-terminal (zpty), with compinit and the completion
# found in fpath; its compadd is wrapped to print each match it adds, after "MATCH:".  The
# line is typed with a TAB after it, bound to a widget that completes and then prints a
# mark: nothing more is typed before the mark is read, as zsh may cut a completion short
# when input is waiting.
zmodload zsh/zpty || exit 2
local init=${TMPDIR:-/tmp}/zsh-complete-init.$$
cat > $init <<INIT
PS1='' PROMPT='' RPROMPT=''
unsetopt zle_bracketed_paste 2>/dev/null
fpath=(${FPATH_FIRST:+$FPATH_FIRST} \$fpath)
autoload -Uz compinit && compinit -u -D
compadd() {
    # Calls that only collect matches into arrays (-O, -A, -D) add none themselves.
    if (( \${@[(I)-[OAD]]} )); then
        builtin compadd "\$@"
        return
    fi
    local -a added
    builtin compadd -A added "\$@"
    local match
    for match in "\${(@)added}"; do
        print -r -- "MATCH:\$match"
    done
    builtin compadd "\$@"
}
zstyle ':completion:*' menu no
zstyle ':completion:*' list-prompt ''
complete-and-mark() {
    zle complete-word
    print -r -- COMPLETED''MARK
}
zle -N complete-and-mark
bindkey '^I' complete-and-mark
print -r -- READY''NOW
INIT
zpty z zsh -f -i
zpty -w z "source $init"
local out line
zpty -r -m z out '*READYNOW*' || { rm -f $init; exit 2 }
zpty -w -n z "$1"$'\t'
zpty -r -m z out '*COMPLETEDMARK*'
zpty -d z
rm -f $init
print -r -- ${out//$'\r'/} | grep -ao 'MATCH:[^[:cntrl:]]*' | sed 's/^MATCH://' | sort -u
