// Light and dark: follow the system (prefers-color-scheme) until the member picks one, then
// remember the pick on this machine. The choice is a data attribute the stylesheet reads.
import { useEffect, useState } from 'react';

export type ThemeChoice = 'system' | 'light' | 'dark';
const KEY = 'commons.theme';

export function useTheme(): [ThemeChoice, (choice: ThemeChoice) => void] {
  const [choice, setChoice] = useState<ThemeChoice>(() => {
    const saved = localStorage.getItem(KEY);
    return saved === 'light' || saved === 'dark' ? saved : 'system';
  });
  useEffect(() => {
    const root = document.documentElement;
    if (choice === 'system') {
      root.removeAttribute('data-theme');
      localStorage.removeItem(KEY);
    } else {
      root.setAttribute('data-theme', choice);
      localStorage.setItem(KEY, choice);
    }
  }, [choice]);
  return [choice, setChoice];
}
