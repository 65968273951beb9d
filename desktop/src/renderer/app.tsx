// The frame around every screen: navigation (a list of links, also reachable with Alt+1…7 and
// the arrow keys), the theme switch, and background notices from the core.
import { useCallback, useEffect, useRef, useState, type KeyboardEvent } from 'react';
import { useEvent } from './api.tsx';
import { useTheme, type ThemeChoice } from './theme.ts';
import { ChatScreen } from './screens/chat.tsx';
import { DataScreen } from './screens/data.tsx';
import { FederationScreen } from './screens/federation.tsx';
import { GovernanceScreen } from './screens/governance.tsx';
import { ModelsScreen } from './screens/models.tsx';
import { PersonaliseScreen } from './screens/personalise.tsx';
import { SettingsScreen } from './screens/settings.tsx';

const SCREENS = [
  { id: 'chat', label: 'Chat', Screen: ChatScreen },
  { id: 'data', label: 'My data', Screen: DataScreen },
  { id: 'personalise', label: 'Personalise', Screen: PersonaliseScreen },
  { id: 'federation', label: 'Federation', Screen: FederationScreen },
  { id: 'governance', label: 'Governance', Screen: GovernanceScreen },
  { id: 'models', label: 'Models', Screen: ModelsScreen },
  { id: 'settings', label: 'Settings', Screen: SettingsScreen },
] as const;
type ScreenId = (typeof SCREENS)[number]['id'];

function screenFromHash(): ScreenId {
  const id = window.location.hash.replace(/^#\/?/, '');
  return SCREENS.some((s) => s.id === id) ? (id as ScreenId) : 'chat';
}

interface Notice {
  id: number;
  level: 'info' | 'warning' | 'error';
  message: string;
}

export function App() {
  const [screen, setScreen] = useState<ScreenId>(screenFromHash);
  const [theme, setTheme] = useTheme();
  const [notices, setNotices] = useState<Notice[]>([]);
  const nextNotice = useRef(1);
  const main = useRef<HTMLElement>(null);
  const navItems = useRef<(HTMLAnchorElement | null)[]>([]);

  const go = useCallback((id: ScreenId, focusMain = false) => {
    setScreen(id);
    history.replaceState(null, '', `#${id}`);
    if (focusMain) requestAnimationFrame(() => main.current?.focus());
  }, []);

  useEffect(() => {
    const onHash = () => setScreen(screenFromHash());
    window.addEventListener('hashchange', onHash);
    const onKey = (e: globalThis.KeyboardEvent) => {
      const n = Number(e.key);
      if (e.altKey && n >= 1 && n <= SCREENS.length) {
        e.preventDefault();
        go(SCREENS[n - 1]!.id, true);
      }
    };
    window.addEventListener('keydown', onKey);
    return () => {
      window.removeEventListener('hashchange', onHash);
      window.removeEventListener('keydown', onKey);
    };
  }, [go]);

  useEvent('system.notice', (notice) => {
    const id = nextNotice.current++;
    setNotices((list) => [...list.slice(-4), { id, ...notice }]);
  });

  function onNavKey(event: KeyboardEvent, index: number) {
    const delta = event.key === 'ArrowDown' ? 1 : event.key === 'ArrowUp' ? -1 : 0;
    if (!delta) return;
    event.preventDefault();
    const next = (index + delta + SCREENS.length) % SCREENS.length;
    navItems.current[next]?.focus();
  }

  const current = SCREENS.find((s) => s.id === screen)!;
  return (
    <div className="app">
      <a className="skip" href="#main" onClick={(e) => (e.preventDefault(), main.current?.focus())}>
        Skip to content
      </a>
      <nav className="sidebar" aria-label="Screens">
        <div className="brand">Commons</div>
        <ul>
          {SCREENS.map((s, i) => (
            <li key={s.id}>
              <a
                ref={(el) => {
                  navItems.current[i] = el;
                }}
                href={`#${s.id}`}
                aria-current={s.id === screen ? 'page' : undefined}
                aria-keyshortcuts={`Alt+${i + 1}`}
                onClick={(e) => {
                  e.preventDefault();
                  go(s.id);
                }}
                onKeyDown={(e) => onNavKey(e, i)}
              >
                {s.label}
                <kbd aria-hidden="true">Alt {i + 1}</kbd>
              </a>
            </li>
          ))}
        </ul>
        <label className="theme">
          Theme
          <select value={theme} onChange={(e) => setTheme(e.target.value as ThemeChoice)}>
            <option value="system">System</option>
            <option value="light">Light</option>
            <option value="dark">Dark</option>
          </select>
        </label>
      </nav>
      <main id="main" ref={main} tabIndex={-1} aria-label={current.label} data-screen={screen}>
        <current.Screen key={screen} />
      </main>
      <div className="notices" aria-live="polite">
        {notices.map((n) => (
          <div
            key={n.id}
            className={`notice ${n.level}`}
            role={n.level === 'error' ? 'alert' : 'status'}
          >
            <p>{n.message}</p>
            <button
              type="button"
              aria-label="Dismiss"
              onClick={() => setNotices((list) => list.filter((x) => x.id !== n.id))}
            >
              ×
            </button>
          </div>
        ))}
      </div>
    </div>
  );
}
