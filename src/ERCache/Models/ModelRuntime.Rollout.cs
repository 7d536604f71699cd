namespace ERCache.Models;

// A rollout's gradual switch (Rollout:SwitchAt, SwitchOver): which version serves a user.
internal sealed partial class ModelRuntime
{
    /// <summary>Whether a gradual switch to the next version is configured and the next version exists (a request for
    /// several users may then be served by both).</summary>
    public bool IsSwitching => Policy.SwitchAt is not null && State.Next is not null;

    /// <summary>The runtime that serves <paramref name="userId"/>: this one, or the next version's once the switch has
    /// reached the user. One field read when no switch is configured.</summary>
    public ModelRuntime RouteFor(long userId) =>
        Policy.SwitchAt is null || State.Next is not { } next || SwitchPosition(userId) >= SwitchedShare() ? this : next.Current;

    /// <summary>The share of users switched now: 0 before <c>SwitchAt</c>, rising evenly to 1 over <c>SwitchOver</c>.</summary>
    public double SwitchedShare()
    {
        if (Policy.SwitchAt is not { } at)
        {
            return 0;
        }

        var since = _time.GetUtcNow() - at;
        if (since < TimeSpan.Zero)
        {
            return 0;
        }

        return Policy.SwitchOver <= TimeSpan.Zero ? 1 : Math.Min(1, since / Policy.SwitchOver);
    }

    /// <summary>A user's place in the switch, uniform in [0, 1): the same on every host and in every process, so a user
    /// switches once and everywhere at the same time.</summary>
    public static double SwitchPosition(long userId)
    {
        ulong z = unchecked((ulong)userId + 0x9E3779B97F4A7C15UL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        z ^= z >> 31;
        return (z >> 11) * (1.0 / (1UL << 53));
    }
}
