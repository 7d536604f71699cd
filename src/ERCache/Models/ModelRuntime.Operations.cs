namespace ERCache.Models;

// Operations (push, removal, clear) against one snapshot's tiers, ordered by the version state's write fence: an
// inference or regional lookup that began before one never writes after it.
internal sealed partial class ModelRuntime
{
    /// <summary>Writes a vector pushed by the application (already validated) to both local tiers, stamped now, and
    /// queues it for the regional store. An inference or regional lookup of the user still running does not write
    /// over it afterwards.</summary>
    public void Set(long userId, ReadOnlySpan<float> vector)
    {
        _scheduler.Invalidate(userId);
        State.AdvanceWriteFence();
        WriteLocal(userId, vector, _clock.Now);
        EnqueueRegional(userId, vector.ToArray(), announce: true);
    }

    /// <summary>The first step of a removal, before the regional store deletes the user: an inference of the user still
    /// running is not written afterwards.</summary>
    public void BeginRemove(long userId) => _scheduler.Invalidate(userId);

    /// <summary>The last step of a removal, after the regional store deleted the user: removes the user from both
    /// local tiers, after which no regional lookup already under way writes its older value back. Returns how many
    /// entries there were.</summary>
    public int FinishRemove(long userId)
    {
        State.AdvanceWriteFence();
        State.NoteRemoved(userId); // before the tiers: a snapshot restore running now must not put the user back
        return RemoveLocal(userId);
    }

    /// <summary>Both steps of a removal at once, for a user whose store value is already settled (another host's removal
    /// or push, a push that supersedes a rollout's next version): drops the local copy, and nothing running writes it
    /// back. Returns how many entries there were.</summary>
    public int DropLocal(long userId)
    {
        BeginRemove(userId);
        return FinishRemove(userId);
    }

    /// <summary>Removes the user from both local tiers; returns how many entries there were.</summary>
    private int RemoveLocal(long userId) =>
        (Direct?.Remove(userId) == true ? 1 : 0) + (Failover?.Remove(userId) == true ? 1 : 0);

    /// <summary>Empties both local tiers; no inference or regional lookup running now writes afterwards, and this host
    /// ignores the model's regional values written until now. Returns how many entries there were.</summary>
    public int Clear() => Clear(_time.GetUtcNow().ToUnixTimeMilliseconds());

    /// <summary>As <see cref="Clear()"/> for a clear made at <paramref name="clearedAtUnixMs"/> (another host's).</summary>
    public int Clear(long clearedAtUnixMs)
    {
        Regional?.MarkCleared(RegionalField, clearedAtUnixMs);
        return DropLocal();
    }

    /// <summary>Empties both local tiers; no inference or regional lookup running now writes afterwards. The regional
    /// store's values stay usable. Returns how many entries there were.</summary>
    public int DropLocal()
    {
        _scheduler.InvalidateAll();
        State.AdvanceWriteFence();
        State.NoteRemoved(ModelVersionState.AllUsers);
        return (Direct?.Clear() ?? 0) + (Failover?.Clear() ?? 0);
    }
}
