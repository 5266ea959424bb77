/** Reads a password from the terminal without echo, or a line from stdin when it is not a terminal. */
export function readPassword(prompt: string): Promise<string> {
  const stdin = process.stdin;
  return new Promise((resolve, reject) => {
    let buf = "";
    const isTty = stdin.isTTY === true;
    if (isTty) {
      process.stderr.write(prompt);
      stdin.setRawMode(true);
    }
    stdin.resume();
    stdin.setEncoding("utf8");
    const done = (err?: Error) => {
      stdin.off("data", onData);
      stdin.off("end", onEnd);
      if (isTty) {
        stdin.setRawMode(false);
        process.stderr.write("\n");
      }
      stdin.pause();
      if (err) reject(err);
      else resolve(buf);
    };
    const onEnd = () => done();
    const onData = (s: string) => {
      for (const ch of s) {
        if (ch === "\r" || ch === "\n") return done();
        if (ch === "\u0003") return done(new Error("interrupted"));
        if (ch === "\u007f" || ch === "\b") buf = buf.slice(0, -1);
        else buf += ch;
        if (buf.length > 4096) return done(new Error("password longer than 4096 characters"));
      }
    };
    stdin.on("data", onData);
    stdin.on("end", onEnd);
  });
}
