/**
 * Messages and Converse both want roles to alternate, where chat allows consecutive turns of one
 * role (tool results, then user text): those merge into one turn.
 */
type Turn = Record<string, unknown>

/** Appends `blocks` as a `role` turn, merged into the last turn when it has the same role; nothing for no blocks. */
export function appendTurn(turns: Turn[], role: 'user' | 'assistant', blocks: Turn[]): void {
  if (blocks.length === 0) return
  const last = turns[turns.length - 1]
  if (last !== undefined && last.role === role) (last.content as Turn[]).push(...blocks)
  else turns.push({ role, content: blocks })
}
