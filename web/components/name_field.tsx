/**
 * The box where a name is typed to find someone (a new direct message,
 * adding people to a room): the same attributes everywhere, so it behaves
 * the same way for every person and every screen reader.
 *
 * @module
 */

/** What {@link NameField} needs. */
export interface NameFieldProps {
  /** The input's id (its label points at it). */
  id: string;
  /** The id of the element that says what is wrong, if anything. */
  errorId: string;
  /** What is typed. */
  value: string;
  /** Whether what is typed was refused. */
  invalid: boolean;
  /** Called with what is typed, at each keystroke. */
  onValue: (value: string) => void;
}

/** A name box: no autocorrect or capitals, at most one character past the longest name. */
export function NameField(props: NameFieldProps) {
  return (
    <input
      id={props.id}
      autofocus
      name="user"
      placeholder="Name"
      autocomplete="off"
      autocapitalize="off"
      spellcheck={false}
      maxLength={33}
      value={props.value}
      aria-invalid={props.invalid ? true : undefined}
      aria-describedby={props.errorId}
      onInput={(e) => props.onValue((e.currentTarget as HTMLInputElement).value)}
    />
  );
}
