//! The filter prompt's line, edited as a shell edits one: characters at
//! the cursor, Left and Right, Home and End (Ctrl-A, Ctrl-E), Backspace
//! and Delete, Ctrl-U (to the start), Ctrl-K (to the end), Ctrl-W (the
//! word before the cursor).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// A line and its cursor (a char index).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Line {
    chars: Vec<char>,
    cursor: usize,
}

impl Line {
    /// `text`, the cursor at its end.
    pub fn new(text: &str) -> Line {
        let chars: Vec<char> = text.chars().collect();
        Line {
            cursor: chars.len(),
            chars,
        }
    }

    pub fn text(&self) -> String {
        self.chars.iter().collect()
    }

    /// The cursor, in characters from the start.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Apply an editing key; false for a key that is not one.
    pub fn key(&mut self, key: KeyEvent) -> bool {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('u') if ctrl => {
                self.chars.drain(..self.cursor);
                self.cursor = 0;
            }
            KeyCode::Char('k') if ctrl => self.chars.truncate(self.cursor),
            KeyCode::Char('w') if ctrl => {
                let mut start = self.cursor;
                while start > 0 && self.chars[start - 1] == ' ' {
                    start -= 1;
                }
                while start > 0 && self.chars[start - 1] != ' ' {
                    start -= 1;
                }
                self.chars.drain(start..self.cursor);
                self.cursor = start;
            }
            KeyCode::Char('a') if ctrl => self.cursor = 0,
            KeyCode::Char('e') if ctrl => self.cursor = self.chars.len(),
            KeyCode::Char(_) if ctrl => return false,
            KeyCode::Char(c) => {
                self.chars.insert(self.cursor, c);
                self.cursor += 1;
            }
            KeyCode::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                self.chars.remove(self.cursor);
            }
            KeyCode::Delete if self.cursor < self.chars.len() => {
                self.chars.remove(self.cursor);
            }
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(self.chars.len()),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = self.chars.len(),
            KeyCode::Backspace | KeyCode::Delete => {}
            _ => return false,
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(line: &mut Line, code: KeyCode, ctrl: bool) {
        let modifiers = if ctrl {
            KeyModifiers::CONTROL
        } else {
            KeyModifiers::NONE
        };
        assert!(line.key(KeyEvent::new(code, modifiers)));
    }

    fn typed(line: &mut Line, text: &str) {
        for c in text.chars() {
            press(line, KeyCode::Char(c), false);
        }
    }

    #[test]
    fn edits_as_a_shell_line() {
        let mut l = Line::new("dport = :443");
        press(&mut l, KeyCode::Char('w'), true);
        assert_eq!(l.text(), "dport = ");
        typed(&mut l, ":80");
        press(&mut l, KeyCode::Home, false);
        typed(&mut l, "state established and ");
        assert_eq!(l.text(), "state established and dport = :80");
        press(&mut l, KeyCode::Char('e'), true);
        press(&mut l, KeyCode::Left, false);
        press(&mut l, KeyCode::Left, false);
        press(&mut l, KeyCode::Backspace, false);
        assert_eq!(l.text(), "state established and dport = 80");
        press(&mut l, KeyCode::Delete, false);
        assert_eq!(l.text(), "state established and dport = 0");
        press(&mut l, KeyCode::Char('u'), true);
        assert_eq!((l.text().as_str(), l.cursor()), ("0", 0));
        press(&mut l, KeyCode::Char('k'), true);
        assert_eq!(l.text(), "");
        // Ctrl-U on an empty line is no `u`.
        press(&mut l, KeyCode::Char('u'), true);
        assert_eq!(l.text(), "");
    }
}
