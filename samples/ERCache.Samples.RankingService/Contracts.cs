namespace ERCache.Samples.RankingService;

/// <summary>A ranking request: the user and the candidate items to rank; <see cref="K"/> items come back.</summary>
public sealed record RankRequest(long UserId, long[]? Items, int K = 10);

/// <summary>One ranked item.</summary>
public sealed record RankedItem(long ItemId, float Score);

/// <summary>Where one model's user embedding came from.</summary>
public sealed record ModelEmbedding(EmbeddingSource Source, double AgeMs, InferenceFailureCause FailureCause, string Version);

/// <summary>The top items, best first, and per model the embedding's source and age.</summary>
public sealed record RankResponse(long UserId, IReadOnlyList<RankedItem> Items, IReadOnlyDictionary<string, ModelEmbedding> Models);

/// <summary>The service's counters: ERCache's (by instrument and tags), the user towers' compute, and when another
/// host's removal, push or clear was last applied here (a <see cref="System.Diagnostics.Stopwatch"/> timestamp, 0 when
/// never).</summary>
public sealed record StatsResponse(IReadOnlyDictionary<string, long> Counters, IReadOnlyDictionary<string, TowerStats> Towers, long LastInvalidationApplied = 0);

/// <summary>A user's data removed from every tier of every model (and, with a regional store, announced to the other
/// hosts); <see cref="Returned"/> is when the removal returned here, a <see cref="System.Diagnostics.Stopwatch"/>
/// timestamp.</summary>
public sealed record RemovalResponse(long UserId, long Returned);

/// <summary>What one user tower computed: users and CPU time.</summary>
public sealed record TowerStats(long Users, double ComputeMs);
