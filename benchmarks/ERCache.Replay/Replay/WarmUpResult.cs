namespace ERCache.Replay.Replay;

/// <summary>What a JIT warm-up did: its replays, of how many requests, how long, and whether the JIT had settled.</summary>
internal readonly record struct WarmUpResult(int Runs, int Requests, TimeSpan Elapsed, bool Settled);
