/** What a node in maintenance answers to a new VM or a VM start. */
export function maintenanceSentence(node: string, what: 'create' | 'start'): string {
  return what === 'create'
    ? `Node ${node} is in maintenance; it takes no new VMs until its maintenance ends.`
    : `Node ${node} is in maintenance; VMs are not started here until its maintenance ends.`;
}
