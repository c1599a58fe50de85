import { signalsByName } from './human-signals';

describe('human-signals stand-in', () => {
  it('knows the signals execa may report, by name and number', () => {
    expect(signalsByName.SIGTERM).toEqual({ name: 'SIGTERM', number: 15, description: 'SIGTERM' });
    expect(signalsByName.SIGKILL.number).toBe(9);
  });
});
