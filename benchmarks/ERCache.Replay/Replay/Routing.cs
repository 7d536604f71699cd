namespace ERCache.Replay.Replay;

/// <summary>How requests are spread over several hosts, each with its own in-process cache.</summary>
internal enum Routing
{
    /// <summary>A user always goes to the same host (hash of the user id).</summary>
    Sticky,

    /// <summary>Each request goes to a host chosen at random (seeded).</summary>
    Random,
}
