using ERCache.Replay;

// dotnet run -c Release --project benchmarks/ERCache.Replay -- --synthetic --direct-ttl 1m
return ReplayCommand.Run(args, Console.Out, Console.Error);
